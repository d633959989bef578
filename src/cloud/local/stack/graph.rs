//! The dependency graph between a template's resources: creation order
//! (dependencies first) and, reversed, deletion order.

use std::collections::{BTreeMap, BTreeSet};

/// Resources in an order where each comes after everything it depends on;
/// ties broken by name, so the order is the same on every run. On a cycle,
/// `Err` holds one cycle's resources in order (`A → B → A`).
pub(super) fn creation_order(
    deps: &BTreeMap<String, BTreeSet<String>>,
) -> Result<Vec<String>, Vec<String>> {
    let mut waiting: BTreeMap<&str, usize> = deps
        .iter()
        .map(|(id, d)| {
            (
                id.as_str(),
                d.iter().filter(|x| deps.contains_key(*x)).count(),
            )
        })
        .collect();
    let mut dependents: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for (id, d) in deps {
        for dep in d.iter().filter(|x| deps.contains_key(*x)) {
            dependents
                .entry(dep.as_str())
                .or_default()
                .push(id.as_str());
        }
    }
    let mut ready: BTreeSet<&str> = waiting
        .iter()
        .filter(|(_, n)| **n == 0)
        .map(|(id, _)| *id)
        .collect();
    let mut order = Vec::with_capacity(deps.len());
    while let Some(id) = ready.pop_first() {
        waiting.remove(id);
        order.push(id.to_string());
        for dependent in dependents.get(id).into_iter().flatten() {
            if let Some(n) = waiting.get_mut(dependent) {
                *n -= 1;
                if *n == 0 {
                    ready.insert(dependent);
                }
            }
        }
    }
    if waiting.is_empty() {
        return Ok(order);
    }
    // Everything left waits on something left: walk dependencies until one repeats.
    let mut path: Vec<&str> = Vec::new();
    let mut at = waiting.keys().next().copied().unwrap_or_default();
    loop {
        if let Some(start) = path.iter().position(|p| *p == at) {
            let mut cycle: Vec<String> = path[start..].iter().map(|s| s.to_string()).collect();
            cycle.push(at.to_string());
            return Err(cycle);
        }
        path.push(at);
        let next = deps
            .get(at)
            .and_then(|d| d.iter().find(|x| waiting.contains_key(x.as_str())));
        match next {
            Some(next) => at = next.as_str(),
            None => return Err(path.iter().map(|s| s.to_string()).collect()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn graph(edges: &[(&str, &[&str])]) -> BTreeMap<String, BTreeSet<String>> {
        edges
            .iter()
            .map(|(id, d)| (id.to_string(), d.iter().map(|s| s.to_string()).collect()))
            .collect()
    }

    #[test]
    fn dependencies_come_first_and_ties_by_name() {
        let g = graph(&[
            ("Rule", &["Function"]),
            ("Function", &["Role", "Table"]),
            ("Table", &[]),
            ("Role", &[]),
            ("Alpha", &[]),
        ]);
        assert_eq!(
            creation_order(&g).expect("acyclic"),
            ["Alpha", "Role", "Table", "Function", "Rule"]
        );
    }

    #[test]
    fn a_cycle_is_named_in_order() {
        let g = graph(&[("A", &["B"]), ("B", &["C"]), ("C", &["A"]), ("D", &[])]);
        assert_eq!(creation_order(&g).expect_err("cycle"), ["A", "B", "C", "A"]);
        let g = graph(&[("Self", &["Self"])]);
        assert_eq!(creation_order(&g).expect_err("cycle"), ["Self", "Self"]);
    }
}
