//! The step graph: `needs` become edges; order, parallel groups and the critical path.

use crate::runbook::diagnostic::{Diagnostic, suggest};
use crate::runbook::model::Step;
use miette::SourceSpan;
use petgraph::algo::tarjan_scc;
use petgraph::graph::{DiGraph, NodeIndex};
use std::collections::HashMap;

/// The resolved graph: step `i` is node `i`; an edge `a → b` means `b` needs `a`.
#[derive(Debug, Clone)]
pub struct Dag {
    pub graph: DiGraph<usize, ()>,
    /// For each step, the indices of the steps it needs.
    pub needs: Vec<Vec<usize>>,
}

/// Resolve `needs` names to indices (absent: the previous step). Unknown names are reported
/// and dropped, so the rest of validation can go on.
pub fn resolve(steps: &[Step], diags: &mut Vec<Diagnostic>) -> Dag {
    let index: HashMap<&str, usize> = steps
        .iter()
        .enumerate()
        .rev() // the first of duplicate ids wins
        .map(|(i, s)| (s.id(), i))
        .collect();
    let ids: Vec<&str> = steps.iter().map(Step::id).collect();
    let mut needs = Vec::with_capacity(steps.len());
    for (i, step) in steps.iter().enumerate() {
        let mut mine = Vec::new();
        match &step.common.needs {
            None => mine.extend(i.checked_sub(1)),
            Some(names) => {
                let items = step
                    .node
                    .get("needs")
                    .and_then(|n| n.as_seq())
                    .unwrap_or(&[]);
                for (k, name) in names.iter().enumerate() {
                    let span = items.get(k).map_or(step.node.span, |n| n.span);
                    match index.get(name.as_str()) {
                        Some(&j) if j == i => diags.push(
                            Diagnostic::new("rb::self-need", format!("step `{name}` needs itself"))
                                .label(span, "a step cannot wait for itself"),
                        ),
                        Some(&j) => mine.push(j),
                        None => diags.push(
                            Diagnostic::new(
                                "rb::unknown-step",
                                format!("step `{}` needs unknown step `{name}`", step.id()),
                            )
                            .label(span, "no step has this id")
                            .help(suggest(name, &ids, "step ids")),
                        ),
                    }
                }
            }
        }
        mine.sort_unstable();
        mine.dedup();
        needs.push(mine);
    }
    let mut graph = DiGraph::with_capacity(steps.len(), steps.len());
    let nodes: Vec<NodeIndex> = (0..steps.len()).map(|i| graph.add_node(i)).collect();
    for (i, mine) in needs.iter().enumerate() {
        for &j in mine {
            graph.add_edge(nodes[j], nodes[i], ());
        }
    }
    Dag { graph, needs }
}

impl Dag {
    /// One cycle per strongly connected component, as a path `a, b, c` meaning a needs b
    /// needs c needs a.
    pub fn cycles(&self) -> Vec<Vec<usize>> {
        let mut out = Vec::new();
        for scc in tarjan_scc(&self.graph) {
            if scc.len() < 2 {
                continue;
            }
            let members: Vec<usize> = scc.iter().map(|n| self.graph[*n]).collect();
            let start = *members.iter().min().expect("non-empty");
            out.push(self.cycle_from(start, &members));
        }
        out.sort();
        out
    }

    /// Walk `needs` inside the component from `start` until a step repeats.
    fn cycle_from(&self, start: usize, members: &[usize]) -> Vec<usize> {
        let mut path = vec![start];
        let mut seen: HashMap<usize, usize> = HashMap::from([(start, 0)]);
        let mut at = start;
        loop {
            let next = *self.needs[at]
                .iter()
                .find(|n| members.contains(n))
                .expect("a member of a cycle needs another member");
            if let Some(&pos) = seen.get(&next) {
                return path[pos..].to_vec();
            }
            seen.insert(next, path.len());
            path.push(next);
            at = next;
        }
    }

    /// Steps in an order where every step comes after its needs; among ready steps, file order.
    /// Only meaningful without cycles.
    pub fn order(&self) -> Vec<usize> {
        let n = self.needs.len();
        let mut pending: Vec<usize> = self.needs.iter().map(Vec::len).collect();
        let dependents = self.dependents();
        let mut ready: std::collections::BTreeSet<usize> =
            (0..n).filter(|&i| pending[i] == 0).collect();
        let mut out = Vec::with_capacity(n);
        while let Some(i) = ready.pop_first() {
            out.push(i);
            for &d in &dependents[i] {
                pending[d] -= 1;
                if pending[d] == 0 {
                    ready.insert(d);
                }
            }
        }
        out
    }

    /// For each step, the steps that need it.
    pub fn dependents(&self) -> Vec<Vec<usize>> {
        let mut out = vec![Vec::new(); self.needs.len()];
        for (i, mine) in self.needs.iter().enumerate() {
            for &j in mine {
                out[j].push(i);
            }
        }
        out
    }

    /// Parallel groups: group `k` holds the steps whose longest chain of needs has `k` links;
    /// every step of a group can run together once the earlier groups are done.
    pub fn groups(&self) -> Vec<Vec<usize>> {
        let mut level = vec![0usize; self.needs.len()];
        for i in self.order() {
            level[i] = self.needs[i]
                .iter()
                .map(|&j| level[j] + 1)
                .max()
                .unwrap_or(0);
        }
        let mut groups = vec![Vec::new(); level.iter().max().map_or(0, |m| m + 1)];
        for (i, l) in level.iter().enumerate() {
            groups[*l].push(i);
        }
        groups
    }

    /// Every step each step transitively needs.
    pub fn ancestors(&self) -> Vec<Vec<bool>> {
        let n = self.needs.len();
        let mut anc = vec![vec![false; n]; n];
        for i in self.order() {
            for &j in &self.needs[i] {
                anc[i][j] = true;
                let theirs = anc[j].clone();
                for (m, t) in anc[i].iter_mut().zip(theirs) {
                    *m |= t;
                }
            }
        }
        anc
    }

    /// The longest path by `weights` (seconds): its steps in order and its length.
    pub fn critical_path(&self, weights: &[f64]) -> (Vec<usize>, f64) {
        let n = self.needs.len();
        let mut finish = vec![0.0f64; n];
        let mut via: Vec<Option<usize>> = vec![None; n];
        for i in self.order() {
            let best = self.needs[i]
                .iter()
                .copied()
                .max_by(|a, b| finish[*a].total_cmp(&finish[*b]).then(b.cmp(a)));
            finish[i] = best.map_or(0.0, |b| finish[b]) + weights[i];
            via[i] = best;
        }
        let Some(mut at) = (0..n).max_by(|a, b| finish[*a].total_cmp(&finish[*b]).then(b.cmp(a)))
        else {
            return (Vec::new(), 0.0);
        };
        let total = finish[at];
        let mut path = vec![at];
        while let Some(prev) = via[at] {
            path.push(prev);
            at = prev;
        }
        path.reverse();
        (path, total)
    }
}

/// The source span of the `needs` entry of `step` naming `need` (or the step's id).
pub fn need_span(step: &Step, need: &str) -> SourceSpan {
    step.node
        .get("needs")
        .and_then(|n| n.as_seq())
        .and_then(|items| items.iter().find(|n| n.as_str() == Some(need)))
        .or_else(|| step.node.get("id"))
        .map_or(step.node.span, |n| n.span)
}
