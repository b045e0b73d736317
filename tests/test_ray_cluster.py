"""A sweep on a real two-worker-node Ray cluster on this machine (#20): the driver's output
directory is a private tmpfs mount that no Ray node can see, a worker node is killed mid-sweep,
and the final Parquet still holds every trial exactly once with the rows a single-machine run of
the same config and seeds makes."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
import time

import pytest
from mlsysgym.experiments.sweep import expand, load_config, load_results, trial_result

PLUGIN = '''
import os
import time
from pathlib import Path

from mlsysgym.agents.base import register_agent


@register_agent("beacon_random")
def beacon_random(problem, rng, batch_size=1, sleep_s=0.0, beacon=""):
    """Random search that leaves a file in ``beacon`` when it starts (the test sees trials
    start) and sleeps before each batch (the trial is still running when its node dies)."""
    Path(beacon, f"{os.getpid()}-{time.monotonic_ns()}").touch()
    while True:
        time.sleep(sleep_s)
        problem.evaluate(problem.space.sample(rng, n=batch_size))
'''

DRIVER = ('mount -t tmpfs tmpfs "$HIDDEN" && "$PY" -m mlsysgym.cli sweep "$CFG" '
          '--ray-address "$ADDR" --no-progress; rc=$?; cp -a "$HIDDEN/out" "$COPY"; exit $rc')


def _private_mounts() -> bool:
    return shutil.which("unshare") is not None and subprocess.run(
        ["unshare", "-m", "--propagation", "private", "true"], capture_output=True,
        check=False).returncode == 0


@pytest.mark.slow
@pytest.mark.skipif(not _private_mounts(), reason="needs unshare -m (a private mount namespace)")
def test_two_node_sweep_without_shared_storage_survives_a_dead_node(tmp_path):
    cluster_utils = pytest.importorskip("ray.cluster_utils")
    plugin_dir, beacon, hidden, copy = (tmp_path / d for d in ("plugin", "beacon", "hidden",
                                                                "copy"))
    for d in (plugin_dir, beacon, hidden):
        d.mkdir()
    (plugin_dir / "cluster_plugin.py").write_text(PLUGIN)
    config = tmp_path / "sweep.yaml"
    config.write_text(textwrap.dedent(f"""
        name: two_nodes
        output_dir: {hidden / "out"}
        problems: [synthetic-discrete]
        budget: 4
        seeds: [0, 1, 2]
        imports: [cluster_plugin]
        max_failures: 2
        agents:
          - name: beacon_random
            hyperparameters: {{sleep_s: 0.4, batch_size: [1, 2], beacon: "{beacon}"}}
    """))
    sys.path.insert(0, str(plugin_dir))  # the expected rows, computed here
    try:
        specs = expand(load_config(config))[0]
        expected = {s.key: trial_result(s, "two_nodes") for s in specs}
    finally:
        sys.path.remove(str(plugin_dir))
    assert len(expected) == 6 and len(list(beacon.iterdir())) == 6
    for f in beacon.iterdir():
        f.unlink()

    cluster = cluster_utils.Cluster(initialize_head=True, head_node_args={"num_cpus": 0})
    try:
        doomed = cluster.add_node(num_cpus=1)
        cluster.add_node(num_cpus=1)
        # HOME and RAY_* pass through: a Ray started earlier in this process (the suite's
        # session Ray) may have set up an auth token the driver must find to connect
        env = {**{k: v for k, v in os.environ.items() if k.startswith("RAY_")},
               "PATH": "/usr/bin:/bin", "HOME": os.environ.get("HOME", str(tmp_path)),
               "HIDDEN": str(hidden),
               "PY": sys.executable, "CFG": str(config), "ADDR": cluster.address,
               "COPY": str(copy), "PYTHONPATH": str(plugin_dir)}
        start = time.monotonic()
        driver = subprocess.Popen(["unshare", "-m", "--propagation", "private", "sh", "-c",
                                   DRIVER], env=env, stdout=subprocess.PIPE,
                                  stderr=subprocess.STDOUT, text=True)
        while len(list(beacon.iterdir())) < 2 and driver.poll() is None \
                and time.monotonic() - start < 120:
            time.sleep(0.05)
        assert driver.poll() is None, driver.communicate()[0][-3000:]
        cluster.remove_node(doomed, allow_graceful=False)  # a trial is running on it
        out = driver.communicate(timeout=300)[0]
        wall = time.monotonic() - start
    finally:
        cluster.shutdown()
    assert driver.returncode == 0, out[-3000:]
    print(f"two-node sweep: {wall:.1f} s, {len(list(beacon.iterdir()))} trial starts")
    assert "remaining 0 of 6" in " ".join(out.split())
    assert not list(hidden.iterdir())  # no node wrote where the driver's output_dir lives
    assert len(list(beacon.iterdir())) >= 7  # the trial on the dead node ran again

    trials, traj = load_results(copy)
    assert sorted(trials["trial_key"]) == sorted(expected)  # every trial exactly once
    for row in trials.to_dict("records"):
        want, want_traj = expected[row["trial_key"]]
        for k in ("best_reward", "n_evaluations", "n_failed", "best_design", "hyperparameters",
                  "seed", "agent", "problem", "evaluator_id", "evaluator_version"):
            assert row[k] == want[k], k
        got_traj = traj[traj["trial_key"] == row["trial_key"]]
        for c in ("reward", "dataflow", "pes", "tile"):
            assert got_traj[c].tolist() == want_traj[c].tolist(), c
