//! `rb schema`

use crate::exit_code;

pub fn run() -> u8 {
    println!("{}", crate::schema::json());
    exit_code::OK
}
