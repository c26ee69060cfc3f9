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
        torch_threads(3)  # not torch's default on any machine this runs on
        assert "torch" not in sys.modules
        from sim import CooperativeModel
        CooperativeModel({"rounds": 1, "population": {"n_principals": 3}, "training": {"standalone_epochs": 1}},
                         rng=0).run()
        import torch
        print(torch.get_num_threads(), type(torch.__spec__.loader).__name__)
        torch_threads(2)  # torch loaded: set at once
        print(torch.get_num_threads())
    """)
    assert out.split() == ["3", "SourceFileLoader", "2"]  # torch's own loader kept (resources, sources)


def test_torch_threads_last_call_wins_and_the_hook_is_one_shot():
    out = _python("""
        import sys
        from coopsim.threads import torch_threads, _SetThreadsOnImport
        torch_threads(1)
        torch_threads(3)
        print(sum(isinstance(f, _SetThreadsOnImport) for f in sys.meta_path))
        import importlib.util
        assert importlib.util.find_spec("torch") is not None  # a look-up only: the hook stays for the import
        import torch.nn  # a submodule first
        print(torch.get_num_threads(), sum(isinstance(f, _SetThreadsOnImport) for f in sys.meta_path))
    """)
    assert out.split() == ["1", "3", "0"]


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


def test_every_library_scenario_lives_in_the_module_named_after_it():
    # the registry imports a named scenario's module alone on that convention (else the whole library)
    import importlib

    from scenarios.registry import registry

    for name, scen in registry().items():
        module = importlib.import_module(f"scenarios.library.{name.replace('-', '_')}")
        assert module.SCENARIO.name == name and module.SCENARIO.run is scen.run


def test_a_helper_warmed_for_a_surrogate_scenario_imports_it_alone():
    out = _python("""
        import sys
        from scenarios.parallel import warm_library
        warm_library("free-riding")
        print("torch" in sys.modules, sorted(m for m in sys.modules if m.startswith("scenarios.library.")))
    """)
    torch_loaded, modules = out.split(" ", 1)
    assert torch_loaded == "False" and "free_riding" in modules and "equilibrium" not in modules, out


def test_the_scenario_a_sweep_names_is_read_through_a_scenario_file(tmp_path):
    from scenarios.io import scenario_named

    (tmp_path / "mine.toml").write_text('scenario = "free-riding"\n')
    (tmp_path / "by_name.toml").write_text('scenario = "quickstart"\nseed = 1\n')
    (tmp_path / "by_file.toml").write_text('scenario = "mine.toml"\n')
    (tmp_path / "loop.toml").write_text('scenario = "loop.toml"\n')
    (tmp_path / "bad.toml").write_text("scenario = [\n")
    assert scenario_named(tmp_path / "by_name.toml") == "quickstart"
    assert scenario_named(tmp_path / "by_file.toml") == "free-riding"  # relative to the sweep file's folder
    assert scenario_named(tmp_path / "loop.toml") is None
    assert scenario_named(tmp_path / "bad.toml") is None and scenario_named(tmp_path / "missing.toml") is None

