"""The shrinker's search (run.py shrink_ops) on a fake round whose failure depends on
known operations."""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import run  # noqa: E402


def _plan(*faults):
    return [{"fault": f, "hold": 1.0, "seed": i, "gap": 1.0} for i, f in enumerate(faults)]


def test_shrinks_to_the_operations_the_failure_needs():
    plan = _plan("pause", "kill", "partition-one", "disk-eio", "restart")
    calls = []

    def attempt(k, ops):
        calls.append([o["fault"] for o in ops])
        names = {o["fault"] for o in ops}
        # fails (as a linearizability violation) only with both kill and disk-eio
        return ["register key r1-2 is not linearizable"] if {"kill", "disk-eio"} <= names \
            else []

    kinds = run.problem_kinds(["register key r1-2 is not linearizable"])
    minimal, attempts = run.shrink_ops(plan, kinds, attempt, max_attempts=10)
    assert [o["fault"] for o in minimal] == ["kill", "disk-eio"]
    assert [o["seed"] for o in minimal] == [1, 3]  # each keeps its own seed
    assert len(attempts) == 5 and len(calls) == 5


def test_a_different_failure_does_not_count_and_attempts_are_bounded():
    plan = _plan("kill", "pause", "restart")

    def attempt(k, ops):
        return ["digest mismatch: replicas diverged"]  # another kind than the original

    kinds = run.problem_kinds(["tokens: [...]"])
    minimal, attempts = run.shrink_ops(plan, kinds, attempt, max_attempts=2)
    assert minimal == plan
    assert len(attempts) == 2 and not any(a["reproduced"] for a in attempts)


def test_problem_kinds():
    assert run.problem_kinds(["register key a is not linearizable", "append: {}",
                              "not converged: x", "crashes: [('n1', -11)]",
                              "transit: []"]) == {"register", "append", "not converged",
                                                  "crashes", "transit"}
