"""Surrogate work never loads torch (issue 17: a process's start-up is serial time in every sweep),
and torch's threads are still set when something does import it (``coopsim.threads``). Each check
runs in a fresh interpreter: this test process has torch loaded already."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _python(code: str) -> str:
    done = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], cwd=ROOT, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def test_a_surrogate_run_and_its_scenario_never_import_torch():
    out = _python("""
        import sys
        from scenarios.registry import resolve
        from scenarios.runner import execute
        resolved = resolve("free-riding", ["cooperative.training.mode='surrogate'", "cooperative.rounds=3",
                                           "cooperative.population.n_principals=30", "replicates=2"])
        frame, _, _ = execute(resolved)
        loaded = sorted(m for m in sys.modules if m == "torch" or m.startswith("scenarios.library."))
        print(len(frame) > 0, "torch" in sys.modules, loaded)
    """)
    ran, torch_loaded, loaded = out.split(" ", 2)
    assert ran == "True" and torch_loaded == "False", out
    # only the scenario's own module and the cooperative machinery it builds on were imported
    assert "cgsv_fairness" not in loaded and "attribution_substrate" not in loaded, loaded


def test_a_real_run_still_loads_torch_with_the_threads_asked_for():
    out = _python("""
        import sys
        from coopsim.threads import torch_threads
        torch_threads(1)
        assert "torch" not in sys.modules
        from sim import CooperativeModel
        CooperativeModel({"rounds": 1, "population": {"n_principals": 3}, "training": {"standalone_epochs": 1}},
                         rng=0).run()
        import torch
        print(torch.get_num_threads(), type(torch.__spec__.loader).__name__)
        torch_threads(2)  # torch loaded: set at once
        print(torch.get_num_threads())
    """)
    assert out.split() == ["1", "SourceFileLoader", "2"]  # torch's own loader kept (resources, sources)


def test_torch_threads_last_call_wins_and_the_hook_is_one_shot():
    out = _python("""
        import sys
        from coopsim.threads import torch_threads, _SetThreadsOnImport
        torch_threads(3)
        torch_threads(1)
        print(sum(isinstance(f, _SetThreadsOnImport) for f in sys.meta_path))
        import torch
        print(torch.get_num_threads(), sum(isinstance(f, _SetThreadsOnImport) for f in sys.meta_path))
    """)
    assert out.split() == ["1", "1", "0"]


def test_the_registry_finds_a_scenario_by_its_module_and_still_knows_every_name():
    out = _python("""
        import sys
        from scenarios.registry import get, registry
        get("free-riding")
        print("scenarios.library.equilibrium" in sys.modules)
        try:
            get("no-such-scenario")
        except Exception as exc:
            print(type(exc).__name__, "free-riding" in str(exc) and "cgsv-fairness" in str(exc))
        print(get("free-riding") == registry()["free-riding"])
    """)
    assert out.split("\n") == ["False", "InputError True", "True"]
