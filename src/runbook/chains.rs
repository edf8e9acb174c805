//! The chains of a step graph: for each step, the longest chain of steps through it (from a
//! step that needs nothing, along `needs`, to a step that nothing needs), and so the slowest
//! item of each `for_each` group. Reports weigh steps by their durations, plans by estimates.

use super::for_each::split_id;
use std::collections::HashMap;

/// The length of the longest chain of steps through each step: from a step that needs
/// nothing, along `needs`, to a step that nothing needs, summing the steps' `seconds`
/// (durations in a report, estimates in a plan). `steps` are `(id, needs, seconds)`; a need
/// that names no step of the list adds nothing.
pub fn chains(steps: &[(&str, Vec<&str>, f64)]) -> Vec<f64> {
    let at: HashMap<&str, usize> = steps.iter().enumerate().map(|(i, s)| (s.0, i)).collect();
    let needs: Vec<Vec<usize>> = steps
        .iter()
        .map(|s| s.1.iter().filter_map(|n| at.get(n).copied()).collect())
        .collect();
    let mut dependents = vec![Vec::new(); steps.len()];
    let mut waiting: Vec<usize> = needs.iter().map(Vec::len).collect();
    for (i, ns) in needs.iter().enumerate() {
        for &n in ns {
            dependents[n].push(i);
        }
    }
    // Kahn's order: every step after the steps it needs (a cycle, which a plan never has,
    // leaves its steps out and their chains at their own length).
    let mut order: Vec<usize> = (0..steps.len()).filter(|&i| waiting[i] == 0).collect();
    let mut k = 0;
    while k < order.len() {
        for &d in &dependents[order[k]] {
            waiting[d] -= 1;
            if waiting[d] == 0 {
                order.push(d);
            }
        }
        k += 1;
    }
    let secs: Vec<f64> = steps.iter().map(|s| s.2).collect();
    let mut to = secs.clone();
    for &i in &order {
        to[i] = secs[i] + needs[i].iter().map(|&n| to[n]).fold(0.0, f64::max);
    }
    let mut from = secs.clone();
    for &i in order.iter().rev() {
        from[i] = secs[i] + dependents[i].iter().map(|&d| from[d]).fold(0.0, f64::max);
    }
    (0..steps.len())
        .map(|i| to[i] + from[i] - secs[i])
        .collect()
}

/// Each group's slowest item and its chain's length, by group: the item of the longest chain
/// (the first in list order on a tie); none when every chain is empty.
pub fn slowest<'a>(steps: &[(&'a str, Vec<&str>, f64)]) -> HashMap<&'a str, (&'a str, f64)> {
    let mut out: HashMap<&str, (&str, f64)> = HashMap::new();
    for (s, len) in steps.iter().zip(chains(steps)) {
        let Some((group, key)) = split_id(s.0) else {
            continue;
        };
        if len <= 0.0 {
            continue;
        }
        let best = out.entry(group).or_insert((key, len));
        if len > best.1 {
            *best = (key, len);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::{chains, slowest};

    #[test]
    fn the_slowest_item_is_the_one_on_the_longest_chain() {
        // a[x] is quick but its successor is slow: x's chain (1 + 10) beats y's (5 + 1).
        let steps = vec![
            ("prep", vec![], 2.0),
            ("a[x]", vec!["prep"], 1.0),
            ("a[y]", vec!["prep"], 5.0),
            ("b[x]", vec!["a[x]"], 10.0),
            ("b[y]", vec!["a[y]"], 1.0),
            ("end", vec!["b[x]", "b[y]"], 3.0),
        ];
        assert_eq!(chains(&steps), [16.0, 16.0, 11.0, 16.0, 11.0, 16.0]);
        let s = slowest(&steps);
        assert_eq!(s["a"], ("x", 16.0));
        assert_eq!(s["b"], ("x", 16.0));
        assert!(slowest(&[("a[x]", vec![], 0.0)]).is_empty());
    }
}
