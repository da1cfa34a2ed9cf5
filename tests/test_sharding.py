"Scale-out: ppad-score and ppad-evaluate under torchrun (2 CPU ranks, gloo) write the one-process output; ppad-reproduce --jobs 2 the serial table."
import csv
import shutil
import subprocess
import sys

import numpy as np

from conftest import BIN, FIXTURES, run

TINY = FIXTURES / "parity-tiny"
ENV_KEYS = ("WORLD_SIZE", "RANK", "LOCAL_RANK")


def torchrun(command, *args, nproc=2):
    "Run a console script under torchrun (torch.distributed.run) with `nproc` CPU ranks."
    import os
    env = {k: v for k, v in os.environ.items() if k not in ENV_KEYS}
    env.update(PPAD_DEVICE="cpu", OMP_NUM_THREADS="1")
    program = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", str(nproc), "--master-port", "0",
               "--rdzv-backend", "c10d", "--rdzv-endpoint", "127.0.0.1:0", str(BIN / command)]
    return subprocess.run(program + [str(a) for a in args], capture_output=True, text=True, timeout=300, env=env)


def read_rows(path):
    with open(path, newline="") as f: return list(csv.reader(f))


def assert_same_scores(sharded, single):
    "Same header, same files in the same order, every number within 1e-6."
    a, b = read_rows(sharded), read_rows(single)
    assert a[0] == b[0] and len(a) == len(b) > 1
    assert [r[0] for r in a] == [r[0] for r in b]
    numbers = lambda rows: np.array([[float(v) for v in r[1:7]] for r in rows[1:]])
    assert np.abs(numbers(a) - numbers(b)).max() <= 1e-6
    assert [r[7:] for r in a] == [r[7:] for r in b]  # labels, when there are any


def in_process(command, *args):
    "Run a console script's function in this process (no interpreter start-up): the one-process reference."
    from ppad_nb import cli
    assert cli.run_script(getattr(cli, command), [str(a) for a in args], prog=command) == 0


def test_two_ranks_write_the_one_process_csv(tmp_path, sample):
    images = sample[1].root  # the bundled test split: 40 real X-rays in two sub-folders
    common = ["--clip-weights", "random:tiny", "--learner", TINY / "learner_tiny.pt", "--images", images, "--batch-size", 8, "--device", "cpu"]
    in_process("score", *common, "--out", tmp_path / "one.csv")
    sharded = torchrun("ppad-score", *common, "--out", tmp_path / "two.csv")
    assert sharded.returncode == 0, sharded.stderr
    n = len(read_rows(tmp_path / "one.csv")) - 1
    for rank in range(2): assert f"rank {rank}/2: {n // 2} of {n} images" in sharded.stderr
    assert sharded.stdout.count("wrote") == 1  # rank 0 alone writes and reports
    assert_same_scores(tmp_path / "two.csv", tmp_path / "one.csv")
    assert sorted(p.name for p in tmp_path.iterdir()) == [".ppad-made", "one.csv", "two.csv"]  # no temporary files left


def test_two_ranks_evaluate_to_the_one_process_report(tmp_path, capsys):
    common = ["--learner", TINY / "learner_tiny.pt", "--clip-weights", "random:tiny", "--preset", "demo", "--device", "cpu"]
    in_process("evaluate_command", *common, "--out", tmp_path / "one")
    metrics_line = capsys.readouterr().out.splitlines()[0]
    sharded = torchrun("ppad-evaluate", *common, "--out", tmp_path / "two")
    assert sharded.returncode == 0, sharded.stderr
    assert_same_scores(tmp_path / "two" / "scores.csv", tmp_path / "one" / "scores.csv")
    assert sharded.stdout.splitlines()[0] == metrics_line  # the same metrics


def test_a_bad_image_on_one_rank_stops_both_with_one_line(tmp_path, sample):
    images = tmp_path / "images"
    images.mkdir()
    for f in sample[1].files[:4]: shutil.copy(f, images / f.name)
    broken = images / "zz_truncated.png"  # sorted last: in rank 1's share only
    broken.write_bytes(sample[1].files[0].read_bytes()[:200])
    result = torchrun("ppad-score", "--clip-weights", "random:tiny", "--learner", TINY / "learner_tiny.pt", "--images", images,
                      "--out", tmp_path / "s.csv", "--device", "cpu")
    assert result.returncode != 0
    ours = [line for line in result.stderr.splitlines() if line.startswith("ppad-score: error:")]
    assert len(ours) == 1 and "rank 1/2: " in ours[0] and broken.name in ours[0], result.stderr
    assert not (tmp_path / "s.csv").exists()


def test_jobs_give_the_serial_table(tmp_path, capsys):
    args = ["--preset", "demo", "--clip-weights", "random:tiny", "--epochs", 1, "--shots", 16, "--batch-size", 16,
            "--seeds", 0, 1, "--methods", "ppad", "--device", "cpu"]
    in_process("reproduce_command", *args, "--out", tmp_path / "serial")
    parallel = run("ppad-reproduce", *args, "--jobs", 2, "--out", tmp_path / "parallel")
    assert parallel.returncode == 0, parallel.stderr
    for name in ("table.csv", "table.md"):
        assert (tmp_path / "parallel" / name).read_text() == (tmp_path / "serial" / name).read_text()
    runs = lambda out: sorted(str(p.relative_to(out)) for p in out.rglob("*") if p.name in ("learner.safetensors", "metrics.json", "run.json"))
    assert runs(tmp_path / "parallel") == runs(tmp_path / "serial")
    capsys.readouterr()
    in_process("reproduce_command", *args, "--out", tmp_path / "parallel")  # a serial run continues the parallel one: nothing left to do
    again = capsys.readouterr().out
    assert "training" not in again and again.count("finished run kept") == 2 and again.count("report kept") == 2


def test_two_ranks_score_the_held_out_normals_too(tmp_path, capsys):
    "ppad-evaluate --run: the held-out normals the run recorded are sharded like the test images; same operating points."
    import json
    train = run("ppad-train", "--preset", "demo", "--clip-weights", "random:tiny", "--epochs", 1, "--shots", 8, "--batch-size", 8,
                "--device", "cpu", "--out", tmp_path / "run")
    assert train.returncode == 0, train.stderr
    in_process("evaluate_command", "--run", tmp_path / "run", "--device", "cpu", "--out", tmp_path / "one")
    # torchrun would take "--run" for an abbreviation of its own --run-path: "--" ends torchrun's options
    import os
    env = {k: v for k, v in os.environ.items() if k not in ENV_KEYS}
    env.update(PPAD_DEVICE="cpu", OMP_NUM_THREADS="1")
    sharded = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2", "--master-port", "0", "--rdzv-backend", "c10d",
                              "--rdzv-endpoint", "127.0.0.1:0", "--", str(BIN / "ppad-evaluate"), "--run", str(tmp_path / "run"), "--device", "cpu",
                              "--out", str(tmp_path / "two")], capture_output=True, text=True, timeout=300, env=env)
    assert sharded.returncode == 0, sharded.stderr
    one, two = (json.loads((tmp_path / name / "metrics.json").read_text()) for name in ("one", "two"))
    assert one["n_heldout_normals"] == two["n_heldout_normals"] == 56
    for a, b in zip(one["operating_points"], two["operating_points"], strict=True):
        assert a["name"] == b["name"] and abs(a["threshold"] - b["threshold"]) <= 1e-6 and a["sensitivity"] == b["sensitivity"]
