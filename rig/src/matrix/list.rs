//! `rig matrix list`: every cell with what will happen to it (run, or skip and why).

use super::{Plan, Planned};
use serde_json::{json, Value};

/// One line per cell: `run`, `skip` or `error`, the cell, and the reason; then the counts.
pub fn render_list(planned: &[Planned]) -> String {
    let width = planned
        .iter()
        .map(|p| p.cell.name().len())
        .max()
        .unwrap_or(0);
    let mut s = String::new();
    let (mut run, mut skip, mut error) = (0, 0, 0);
    for p in planned {
        let name = p.cell.name();
        let repeat = if p.cell.repeat > 1 {
            format!(" (×{})", p.cell.repeat)
        } else {
            String::new()
        };
        match &p.plan {
            Plan::Run => {
                run += 1;
                s.push_str(&format!("run    {name}{repeat}\n"));
            }
            Plan::Skip(why) => {
                skip += 1;
                s.push_str(&format!("skip   {name:<width$}  {why}\n"));
            }
            Plan::Error(why) => {
                error += 1;
                s.push_str(&format!("error  {name:<width$}  {why}\n"));
            }
        }
    }
    s.push_str(&format!(
        "{} cells: {run} run, {skip} skipped, {error} cannot be provisioned\n",
        planned.len()
    ));
    s
}

/// The plan as JSON (`rig matrix list --json`, and `matrix.json` of `rig matrix run`).
pub fn planned_json(set: &str, planned: &[Planned]) -> Value {
    let cells: Vec<Value> = planned
        .iter()
        .map(|p| {
            let (plan, reason) = match &p.plan {
                Plan::Run => ("run", None),
                Plan::Skip(r) => ("skip", Some(r.as_str())),
                Plan::Error(r) => ("error", Some(r.as_str())),
            };
            json!({
                "name": p.cell.name(),
                "board": p.cell.board,
                "kernel": p.cell.kernel,
                "scenario": p.cell.scenario.name,
                "repeat": p.cell.repeat,
                "plan": plan,
                "reason": reason,
            })
        })
        .collect();
    json!({ "set": set, "cells": cells })
}
