//! Bucket and window edge cases of [`super::decide()`]; the oracle test against the real
//! `restic` binary lives in `tests/properties/retention_restic.rs`.

use super::*;
use crate::retention::KeepCount;

fn at(s: &str) -> NaiveDateTime {
    NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M:%S").unwrap()
}

/// Snapshots named by their own time, so assertions read as times.
fn snaps(times: &[&str]) -> Vec<Snapshot> {
    times
        .iter()
        .map(|t| Snapshot {
            id: (*t).to_owned(),
            time: at(t),
        })
        .collect()
}

fn kept(decisions: &[Decision]) -> Vec<&str> {
    decisions
        .iter()
        .filter(|d| d.keep)
        .map(|d| d.id.as_str())
        .collect()
}

fn counts(f: impl FnOnce(&mut KeepCounts)) -> KeepCounts {
    let mut keep = KeepCounts::default();
    f(&mut keep);
    keep
}

fn windows(f: impl FnOnce(&mut KeepWithin)) -> KeepWithin {
    let mut within = KeepWithin::default();
    f(&mut within);
    within
}

fn span(s: &str) -> Option<CalendarSpan> {
    s.parse().ok()
}

#[test]
fn iso_weeks_straddle_the_year_boundary() {
    // 2020-12-31 (Thu) to 2021-01-03 (Sun) are all ISO week 2020-W53; 2021-01-04 is 2021-W01.
    let list = snaps(&[
        "2020-12-27 12:00:00", // Sun, 2020-W52
        "2020-12-31 12:00:00",
        "2021-01-01 12:00:00",
        "2021-01-03 12:00:00",
        "2021-01-04 00:00:00",
    ]);
    let d = decide(
        &list,
        &counts(|k| k.weekly = Some(KeepCount::Buckets(3))),
        &KeepWithin::default(),
    );
    assert_eq!(
        kept(&d),
        [
            "2021-01-04 00:00:00",
            "2021-01-03 12:00:00",
            "2020-12-27 12:00:00"
        ]
    );
    // Yearly buckets are calendar years, not ISO years.
    let d = decide(
        &list,
        &counts(|k| k.yearly = Some(KeepCount::Buckets(2))),
        &KeepWithin::default(),
    );
    assert_eq!(kept(&d), ["2021-01-04 00:00:00", "2020-12-31 12:00:00"]);
}

#[test]
fn december_days_can_belong_to_next_iso_year() {
    // 2024-12-30 (Mon) is 2025-W01, together with 2025-01-05 (Sun).
    let list = snaps(&[
        "2024-12-29 23:59:59",
        "2024-12-30 00:00:00",
        "2025-01-05 23:00:00",
    ]);
    let d = decide(
        &list,
        &counts(|k| k.weekly = Some(KeepCount::Buckets(5))),
        &KeepWithin::default(),
    );
    assert_eq!(kept(&d), ["2025-01-05 23:00:00", "2024-12-29 23:59:59"]);
}

#[test]
fn month_ends_and_leap_days_are_their_own_buckets() {
    let list = snaps(&[
        "2024-01-31 23:59:59",
        "2024-02-01 00:00:00",
        "2024-02-28 23:00:00",
        "2024-02-29 01:00:00",
        "2024-03-01 00:00:00",
    ]);
    let d = decide(
        &list,
        &counts(|k| k.monthly = Some(KeepCount::Buckets(3))),
        &KeepWithin::default(),
    );
    assert_eq!(
        kept(&d),
        [
            "2024-03-01 00:00:00",
            "2024-02-29 01:00:00",
            "2024-01-31 23:59:59"
        ]
    );
    let d = decide(
        &list,
        &counts(|k| k.daily = Some(KeepCount::Buckets(3))),
        &KeepWithin::default(),
    );
    assert_eq!(
        kept(&d),
        [
            "2024-03-01 00:00:00",
            "2024-02-29 01:00:00",
            "2024-02-28 23:00:00"
        ]
    );
}

#[test]
fn only_the_newest_of_a_bucket_is_kept_and_ties_keep_input_order() {
    let mut list = snaps(&["2024-05-01 08:00:00", "2024-05-01 20:00:00"]);
    list.push(Snapshot {
        id: "tie-a".to_owned(),
        time: at("2024-05-01 21:00:00"),
    });
    list.push(Snapshot {
        id: "tie-b".to_owned(),
        time: at("2024-05-01 21:00:00"),
    });
    let d = decide(
        &list,
        &counts(|k| k.daily = Some(KeepCount::Buckets(9))),
        &KeepWithin::default(),
    );
    // The newest of the day (the first of the tie), and the oldest since 9 days are left.
    assert_eq!(kept(&d), ["tie-a", "2024-05-01 08:00:00"]);
    assert_eq!(d[3].reasons, ["oldest daily snapshot"]);
    // Newest first, ties in input order.
    let order: Vec<_> = d.iter().map(|d| d.id.as_str()).collect();
    assert_eq!(
        order,
        [
            "tie-a",
            "tie-b",
            "2024-05-01 20:00:00",
            "2024-05-01 08:00:00"
        ]
    );
}

#[test]
fn empty_buckets_do_not_count() {
    let list = snaps(&[
        "2024-01-01 10:00:00",
        "2024-01-10 10:00:00",
        "2024-01-20 10:00:00",
        "2024-01-30 10:00:00",
    ]);
    let d = decide(
        &list,
        &counts(|k| k.daily = Some(KeepCount::Buckets(3))),
        &KeepWithin::default(),
    );
    assert_eq!(
        kept(&d),
        [
            "2024-01-30 10:00:00",
            "2024-01-20 10:00:00",
            "2024-01-10 10:00:00"
        ]
    );
}

#[test]
fn the_oldest_is_kept_while_a_count_or_window_has_room_since_restic_016() {
    let list = snaps(&["2024-01-01 10:00:00", "2024-01-01 12:00:00"]);
    let five_days = counts(|k| k.daily = Some(KeepCount::Buckets(5)));
    let now = NaiveDateTime::MAX;
    let none = KeepWithin::default();
    let d = decide(&list, &five_days, &none);
    assert_eq!(kept(&d), ["2024-01-01 12:00:00", "2024-01-01 10:00:00"]);
    assert_eq!(d[1].reasons, ["oldest daily snapshot"]);
    // restic 0.14 keeps only the newest of the day.
    let d = decide_with(&list, &five_days, &none, now, Rules::Restic014);
    assert_eq!(kept(&d), ["2024-01-01 12:00:00"]);
    // No room left: the one count was used by the newest.
    let one_day = counts(|k| k.daily = Some(KeepCount::Buckets(1)));
    assert_eq!(
        kept(&decide(&list, &one_day, &none)),
        ["2024-01-01 12:00:00"]
    );
    // A window keeps the oldest only if the oldest is inside it.
    let inside = windows(|w| w.daily = span("1d"));
    let d = decide(&list, &KeepCounts::default(), &inside);
    assert_eq!(d[1].reasons, ["oldest daily within 1d"]);
    let outside = windows(|w| w.daily = span("1h"));
    let d = decide(&list, &KeepCounts::default(), &outside);
    assert_eq!(kept(&d), ["2024-01-01 12:00:00"]);
}

#[test]
fn all_counts_keep_every_bucket_and_never_run_out() {
    let list = snaps(&[
        "2023-01-01 10:00:00",
        "2024-01-01 10:00:00",
        "2024-01-01 10:30:00",
        "2024-01-01 11:00:00",
    ]);
    let d = decide(
        &list,
        &counts(|k| {
            k.hourly = Some(KeepCount::All);
            k.yearly = Some(KeepCount::Buckets(1));
        }),
        &KeepWithin::default(),
    );
    assert_eq!(
        kept(&d),
        [
            "2024-01-01 11:00:00",
            "2024-01-01 10:30:00",
            "2023-01-01 10:00:00"
        ]
    );
    assert_eq!(d[0].reasons, ["hourly snapshot", "yearly snapshot"]);
    assert_eq!(d[3].reasons, ["hourly snapshot"]);
    let all_last = counts(|k| k.last = Some(KeepCount::All));
    assert!(
        decide(&list, &all_last, &KeepWithin::default())
            .iter()
            .all(|d| d.keep)
    );
}

#[test]
fn keep_last_counts_snapshots_not_buckets() {
    let list = snaps(&[
        "2024-01-01 10:00:00",
        "2024-01-01 11:00:00",
        "2024-01-01 12:00:00",
    ]);
    let d = decide(
        &list,
        &counts(|k| k.last = Some(KeepCount::Buckets(2))),
        &KeepWithin::default(),
    );
    assert_eq!(kept(&d), ["2024-01-01 12:00:00", "2024-01-01 11:00:00"]);
    assert_eq!(d[0].reasons, ["last snapshot"]);
}

#[test]
fn windows_are_measured_from_the_newest_snapshot_with_go_calendar_arithmetic() {
    // From 2024-02-29 10:00, one year back is "2023-02-29" = 2023-03-01 10:00, exclusive.
    let list = snaps(&[
        "2023-02-28 23:00:00",
        "2023-03-01 10:00:00",
        "2023-03-01 11:00:00",
        "2024-02-29 10:00:00",
    ]);
    let d = decide(
        &list,
        &KeepCounts::default(),
        &windows(|w| w.within = span("1y")),
    );
    assert_eq!(kept(&d), ["2024-02-29 10:00:00", "2023-03-01 11:00:00"]);
    assert_eq!(d[0].reasons, ["within 1y"]);
}

#[test]
fn bucket_windows_keep_the_newest_per_bucket_inside_the_window() {
    let list = snaps(&[
        "2024-03-01 09:00:00", // just outside 1mo of 2024-03-31 (= 2024-03-02 12:00)
        "2024-03-02 13:00:00",
        "2024-03-02 14:00:00",
        "2024-03-31 12:00:00",
    ]);
    let d = decide(
        &list,
        &KeepCounts::default(),
        &windows(|w| w.daily = span("1mo")),
    );
    assert_eq!(kept(&d), ["2024-03-31 12:00:00", "2024-03-02 14:00:00"]);
    assert_eq!(d[0].reasons, ["daily within 1mo"]);
}

#[test]
fn reasons_are_listed_in_restics_order() {
    let list = snaps(&["2024-01-01 10:00:00", "2024-01-02 10:00:00"]);
    let keep = counts(|k| {
        k.last = Some(KeepCount::Buckets(1));
        k.daily = Some(KeepCount::Buckets(1));
    });
    let within = windows(|w| {
        w.within = span("2d");
        w.weekly = span("12w");
    });
    let d = decide(&list, &keep, &within);
    assert_eq!(
        d[0].reasons,
        [
            "within 2d",
            "last snapshot",
            "daily snapshot",
            "weekly within 12w"
        ]
    );
    assert_eq!(d[1].reasons, ["within 2d", "oldest weekly within 12w"]);
}

#[test]
fn an_empty_policy_keeps_everything_like_restic() {
    let list = snaps(&["2024-01-01 10:00:00", "2024-01-02 10:00:00"]);
    let keep = counts(|k| k.daily = Some(KeepCount::Buckets(0)));
    let d = decide(&list, &keep, &KeepWithin::default());
    assert!(d.iter().all(|d| d.keep && d.reasons == ["policy is empty"]));
    assert!(decide(&[], &keep, &KeepWithin::default()).is_empty());
    assert!(
        decide(
            &[],
            &counts(|k| k.daily = Some(KeepCount::Buckets(1))),
            &KeepWithin::default()
        )
        .is_empty()
    );
}

#[test]
fn future_snapshots_do_not_move_the_window() {
    let list = snaps(&[
        "2024-01-01 10:00:00",
        "2024-01-05 10:00:00",
        "2099-01-01 00:00:00",
    ]);
    let within = windows(|w| w.within = span("2d"));
    let now = at("2024-06-01 00:00:00");
    let d = decide_at(&list, &KeepCounts::default(), &within, now);
    assert_eq!(kept(&d), ["2099-01-01 00:00:00", "2024-01-05 10:00:00"]);
    // Without a clock, the future snapshot is simply the newest.
    let d = decide(&list, &KeepCounts::default(), &within);
    assert_eq!(kept(&d), ["2099-01-01 00:00:00"]);
    // All in the future: windows reach back to year 1 and keep everything.
    let d = decide_at(
        &list,
        &KeepCounts::default(),
        &within,
        at("2000-01-01 00:00:00"),
    );
    assert_eq!(kept(&d).len(), 3);
}
