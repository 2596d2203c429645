"""Issue 10, names and the command line: whatever an input is called, whatever happens to
stdout, a run ends the way the README says.

- names: Rich markup, backslashes, control characters, 230-255 byte names, bytes that are
  not UTF-8, newlines, input folders named like outputs or run files;
- FIFOs (in-process, with a watchdog) and closed pipes (real subprocesses, tests/fake_cli.py);
- segcli output folders (marker file), usage errors (exit 2 before any model loads), messages.

Every test runs the CLI on a FakeSegmenter (tests/fakes.py): in-process, or for closed pipes
in processes of their own (tests/fake_cli.py, which never imports torch: about a second each).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import threading
from pathlib import Path

import pytest
from typer.testing import CliRunner

import tests.fakes
from segcli.cli import app
from segcli.cli.console import shown
from segcli.core.errors import SegcliError
from segcli.core.exits import EXIT_BROKEN_PIPE
from segcli.figures.compare import run_compare
from segcli.io.files import NAME_MAX, atomic_write_bytes
from segcli.outputs.plans import OUTPUT_KINDS, OUTPUT_MARKER, plan_outputs
from segcli.runs.batch import BatchOptions, run_batch
from tests import fake_cli
from tests.conftest import BATCH_FAST, PHOTOS
from tests.fakes import FakeSegmenter, use_fake_in_cli, write_images

runner = CliRunner()
FAST = ["--device", "cpu", "--min-size", "64", "--max-size", "96", "--quiet"]
ALL = ",".join(OUTPUT_KINDS)


def _bytes(name: str) -> int:
    return len(os.fsencode(name))


def _batch(root: Path, out: Path, *extra: str) -> object:
    return runner.invoke(app, ["batch", str(root), "-o", str(out), *FAST[:-1], *extra])  # not --quiet


# ----------------------------------------------------------- 1: printing
HOSTILE = [
    "[red]a[/red].png",
    "[bold]b[/bold].png",
    "c\\.png",
    "\\[i].png",
    "[link=file:///etc]d.png",
    "e\x1b[31mred.png",  # a terminal escape: must not reach the terminal raw
    "f\tg.png",
]


def test_shown_is_one_printable_line() -> None:
    assert shown("[red]x[/red]\\") == "[red]x[/red]\\"
    assert shown("a\nb\x1b[0m\t") == "a\\nb\\x1b[0m\\t"
    assert shown(os.fsdecode(b"caf\xe9.png")) == "caf\\xe9.png"
    assert shown("日本語 ok") == "日本語 ok"


def test_user_strings_print_as_written(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Paths with markup, backslashes and control characters in predict (done and failed
    lines), batch (failed lines, summary) and errors: printed as written, one line each,
    control characters escaped (main printed ESC raw and doubled a trailing backslash)."""
    use_fake_in_cli(monkeypatch)
    root = tmp_path / "in"
    good = write_images(root, {name: 10 + i for i, name in enumerate(HOSTILE)})
    (root / "[").mkdir()
    bad = root / "[" / "x]bad\\.png"
    bad.write_bytes(b"not an image")
    out = tmp_path / "o[bold]\\"

    result = runner.invoke(app, ["predict", *map(str, good), str(bad), "-o", str(out), *FAST[:-1]])
    assert result.exit_code == 1
    lines = result.stdout.splitlines()
    assert len(lines) == len(good)
    for path, line in zip(good, lines):
        assert line.startswith(f"{shown(path)}: 2 instances (1 cube, 1 sphere) -> {shown(out)}/"), line
    assert "\x1b" not in result.output and "\t" not in result.output
    assert result.stderr.splitlines()[-1] == f"failed: {bad}: not an image segcli can read"

    batch_out = tmp_path / "b[/x]\\"
    result = _batch(root, batch_out)
    assert result.exit_code == 1
    assert result.stderr.splitlines() == [f"failed: {bad}: not an image segcli can read"]
    assert f"run report: {batch_out / 'run.json'}\n" in result.stdout
    run = json.loads((batch_out / "run.json").read_text())
    assert run["counts"]["done"] == len(good)

    # an error message holding a newline and markup: one line, nothing lost
    blocker = tmp_path / "fi\nle[red]\\"
    blocker.write_bytes(b"")
    result = runner.invoke(app, ["predict", str(good[0]), "-o", str(blocker / "sub"), *FAST])
    assert result.exit_code == 1
    assert result.stderr == (
        f"error: cannot write to output folder {shown(blocker)}/sub "
        f"({shown(blocker)} is a file, not a folder)\n"
    )
    assert shown(blocker).endswith("fi\\nle[red]\\")


def test_compare_table_prints_labels_as_written(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Class names come from a checkpoint: '[red]cube' and 'sphere\\' print as written."""
    monkeypatch.setattr(tests.fakes, "FAKE_CATEGORIES", ("__background__", "[red]cube", "sphere\\", "cyl"))
    use_fake_in_cli(monkeypatch)
    [image] = write_images(tmp_path / "[i]in", {"[b]x\\.png": 20}, height=20)
    result = runner.invoke(app, ["compare", "semantic-vs-instance", str(image), "-o", str(tmp_path / "o")])
    assert result.exit_code == 0, result.output
    assert "│ [red]cube " in result.stdout and "│ sphere\\ " in result.stdout
    assert "[b]x\\.png: semantic (derived) vs instance" in result.stdout


# ----------------------------------------------------------- 2: long names
def _long(n_bytes: int, stem: str = "x", ext: str = ".png") -> str:
    unit = _bytes(stem)
    return stem * ((n_bytes - _bytes(ext)) // unit) + "y" * ((n_bytes - _bytes(ext)) % unit) + ext


LONG_NAMES = {
    _long(230): 10,
    _long(240, ext=".jpeg"): 11,
    _long(250): 12,
    _long(255): 13,
    _long(255, "é"): 14,  # 2-byte characters: never cut in half
    _long(254, "日"): 15,
    _long(255)[:-5] + "z.png": 16,  # same 245-byte prefix as the 255-byte name
}


def test_long_names_work_and_resume(tmp_path: Path) -> None:
    assert {_bytes(n) for n in LONG_NAMES} >= {230, 240, 250, 255}
    root = tmp_path / "in"
    write_images(root, LONG_NAMES)
    out = tmp_path / "out"
    options = BatchOptions(save=tuple(OUTPUT_KINDS))
    first = run_batch(root, out, FakeSegmenter, options=options)
    assert first.summary["counts"] == {
        "inputs": len(LONG_NAMES),
        "done": len(LONG_NAMES),
        "skipped": 0,
        "failed": 0,
        "instances": 2 * len(LONG_NAMES),
        "images": len(LONG_NAMES),
        "videos": 0,
        "frames": 0,
        "total": {"done": len(LONG_NAMES), "failed": 0, "pending": 0, "instances": 2 * len(LONG_NAMES)},
    }
    names = [p.name for p in out.rglob("*")]
    assert max(_bytes(n) for n in names) <= NAME_MAX
    assert all(n.isprintable() for n in names), "no character was cut in two"
    widths = {json.loads(p.read_text())["image"]["width"] for p in out.glob("*.json") if "~" in p.name}
    assert len(widths) >= 4, "the long names got distinct shortened outputs"
    assert all(json.loads(p.read_text()).get("schema") for p in out.glob("*.png.json"))
    again = run_batch(root, out, FakeSegmenter, options=options)
    assert again.summary["counts"]["skipped"] == len(LONG_NAMES), "shortened names are found again"
    coco = json.loads((out / "coco.json").read_text())
    assert sorted(i["file_name"] for i in coco["images"]) == sorted(LONG_NAMES)


def test_long_name_in_predict_compare_and_atomic_writes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    [image] = write_images(tmp_path / "in", {_long(250): 20}, height=20)
    use_fake_in_cli(monkeypatch)
    result = runner.invoke(app, ["predict", str(image), "-o", str(tmp_path / "p"), "--save", ALL, *FAST])
    assert result.exit_code == 0, result.output
    written = [p for p in (tmp_path / "p").rglob("*") if p.is_file()]
    assert max(_bytes(p.name) for p in written) <= NAME_MAX
    assert {p.suffix for p in written} >= {".json", ".png", ".txt"}  # JSON, LabelMe, idmap, YOLO
    made = run_compare(FakeSegmenter(), image, tmp_path / "c")  # type: ignore[arg-type]
    assert made.figure_path.is_file() and _bytes(made.json_path.name) <= NAME_MAX
    target = tmp_path / ("t" * NAME_MAX)
    atomic_write_bytes(target, b"ok")  # its temporary name is shortened, not refused
    assert target.read_bytes() == b"ok" and len(list(tmp_path.iterdir())) == 4


# ----------------------------------------------------------- 3: not UTF-8
def test_non_utf8_names_are_processed_and_recorded_losslessly(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Names holding bytes that are not UTF-8: done, and every JSON records them as
    ``\\udcXX`` escapes, which ``json.loads`` + ``os.fsencode`` turn back into the bytes."""
    root = tmp_path / "in"
    raw_good, raw_bad = b"caf\xe9 \xff.png", b"\xfe\xfd.png"
    [good] = write_images(root, {os.fsdecode(raw_good): 10})
    (root / os.fsdecode(raw_bad)).write_bytes(b"not an image")
    use_fake_in_cli(monkeypatch)
    out = tmp_path / "out"
    result = _batch(root, out)
    assert result.exit_code == 1
    assert result.stderr == "failed: " + shown(root) + "/\\xfe\\xfd.png: not an image segcli can read\n"
    [per_image] = [p for p in out.iterdir() if p.name.endswith(".png.json")]
    assert os.fsencode(per_image.name) == raw_good + b".json"
    for name in (per_image.name, "run.json", "coco.json"):
        (out / name).read_bytes().decode("utf-8")  # valid UTF-8, strict
    record = json.loads(per_image.read_text())
    assert os.fsencode(record["image"]["path"]) == os.fsencode(good)
    assert Path(record["image"]["path"]).read_bytes() == good.read_bytes()
    assert "\\udce9" in per_image.read_text(), "the documented escape"
    run = json.loads((out / "run.json").read_text())
    assert [os.fsencode(f["path"]) for f in run["failed"]] == [os.fsencode(root) + b"/" + raw_bad]
    coco = json.loads((out / "coco.json").read_text())
    assert [os.fsencode(i["file_name"]) for i in coco["images"]] == [raw_good]
    assert _batch(root, out).exit_code == 1 and not any(p.name.endswith(".part") for p in out.iterdir())

    result = runner.invoke(app, ["predict", str(good), "--json", "-", *FAST])
    assert result.exit_code == 0, result.output
    assert os.fsencode(json.loads(result.stdout_bytes)["image"]["path"]) == os.fsencode(good)


# ----------------------------------------------------------- 4: newlines, folders named like outputs
def test_newline_in_a_name_is_kept_in_the_reason(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = tmp_path / "in"
    write_images(root, {"ok.png": 10})
    bad = root / "two\nlines.png"
    bad.write_bytes(b"not an image")
    use_fake_in_cli(monkeypatch)
    result = _batch(root, tmp_path / "out")
    assert result.exit_code == 1
    assert result.stderr == f"failed: {root}/two\\nlines.png: not an image segcli can read\n"
    [failure] = json.loads((tmp_path / "out" / "run.json").read_text())["failed"]
    assert failure == {"path": str(bad), "reason": f"{bad}: not an image segcli can read"}


def test_input_folders_named_like_outputs_or_run_files(tmp_path: Path) -> None:
    """a.png beside a.png.json/ and a.png.masks/; a top folder run.json/: every run works,
    no output lands on a folder the tree needs (main failed a.png on every run)."""
    root = tmp_path / "in"
    names = {
        "a.png": 10,
        "a.png.json/b.png": 11,
        "a.png.masks/c.png": 12,
        "A.PNG.OVERLAY.PNG/d.png": 13,
        "run.json/e.png": 14,
        "coco.json/f.png": 15,
    }
    write_images(root, names)
    out = tmp_path / "out"
    options = BatchOptions(save=tuple(OUTPUT_KINDS))
    for _ in range(2):
        outcome = run_batch(root, out, FakeSegmenter, options=options)
        assert outcome.summary["counts"]["failed"] == 0
        assert outcome.summary["counts"]["done"] + outcome.summary["counts"]["skipped"] == len(names)
    assert outcome.summary["counts"]["skipped"] == len(names)
    assert (out / "run.json").is_file() and (out / "coco.json").is_file()
    assert (out / "a.png.json" / "b.png.json").is_file() and (out / "a.png.masks" / "c.png.masks").is_dir()
    plans = plan_outputs(sorted(root.rglob("*.png")), out, root=root)
    bases = [p.base.relative_to(out).as_posix() for p in plans]
    assert len(set(bases)) == len(bases) and "a.png" not in bases


# ----------------------------------------------------------- 12, 13: FIFOs and pipes
@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="POSIX FIFOs")
def test_fifo_is_refused_not_waited_on(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """predict and compare refuse a FIFO at once (main waited for a writer forever). In-process:
    should segcli wait, after 10 s a watchdog plays the writer (again and again, for every
    open that waits), so the test fails instead of hanging."""
    fifo = tmp_path / "pipe.png"
    os.mkfifo(fifo)
    use_fake_in_cli(monkeypatch)

    def watchdog(finished: threading.Event, waited: threading.Event) -> None:
        while not finished.wait(0.1 if waited.is_set() else 10):
            waited.set()
            os.close(os.open(fifo, os.O_RDWR))  # a blocked open returns; its reads see end of file

    for command in (["predict", str(fifo)], ["compare", "semantic-vs-instance", str(fifo)]):
        finished, waited = threading.Event(), threading.Event()
        thread = threading.Thread(target=watchdog, args=(finished, waited), daemon=True)
        thread.start()
        try:
            args = [*command, "-o", str(tmp_path / "o"), *BATCH_FAST[:-1], "--model", "BLOCKS", "--quiet"]
            done = runner.invoke(app, args)
        finally:
            finished.set()
            thread.join()
        assert not waited.is_set(), "segcli waited for the FIFO's writer"
        assert done.exit_code == 1, done.output
        assert done.stderr.endswith(f"{fifo}: is a FIFO, not an image file\n"), done.stderr
        assert len(done.stderr.splitlines()) == 1


def _fake_cli(*args: str) -> list[str]:
    """The real CLI in a process of its own, on a FakeSegmenter (tests/fake_cli.py: no torch)."""
    return [*fake_cli.COMMAND, *args]


def _start(command: list[str], cwd: Path) -> subprocess.Popen[bytes]:
    env = fake_cli.environment()
    return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, cwd=cwd)


def _photos(folder: Path, n: int) -> list[Path]:
    folder.mkdir()
    data = (PHOTOS / "coffee.jpg").read_bytes()
    paths = [folder / f"p{i}.jpg" for i in range(n)]
    for path in paths:
        path.write_bytes(data)
    return paths


def test_closed_stdout_ends_quietly(tmp_path: Path) -> None:
    """--json - into a reader that goes away (at once, or after 50 bytes), into a closed
    stdout, and batch's summary into a closed pipe: no message, no traceback, exit 0 or 141.
    Real processes on a FakeSegmenter, all four started at once."""
    photos = _photos(tmp_path / "in", 6)
    predict = _fake_cli("predict", *map(str, photos), "--json", "-", *BATCH_FAST)
    gone = _start(predict, tmp_path)
    assert gone.stdout is not None
    gone.stdout.close()  # the reader is gone before the first line
    head = _start(predict, tmp_path)
    closed = _start(["sh", "-c", 'exec "$0" "$@" >&-', *predict], tmp_path)
    batch = _start(
        _fake_cli("batch", str(tmp_path / "in"), "-o", str(tmp_path / "out"), *BATCH_FAST[:-1]), tmp_path
    )
    assert batch.stdout is not None
    batch.stdout.close()  # `| head -1` that has already gone

    assert head.stdout is not None
    assert len(head.stdout.read(50)) == 50  # `| head -c 50`
    head.stdout.close()
    for proc, codes in ((gone, (141,)), (head, (0, 141)), (closed, (0, 141)), (batch, (141,))):
        _, err = proc.communicate(timeout=120)
        assert proc.returncode in codes and err == b"", (proc.args, proc.returncode, err)
    assert json.loads((tmp_path / "out" / "run.json").read_text())["counts"]["done"] == len(photos)


def test_sigpipe_convention_is_not_an_error_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """In-process: a BrokenPipeError from the stdout writer is exit 141 with nothing on stderr."""
    import segcli.cli.console
    import segcli.cli.predict

    use_fake_in_cli(monkeypatch)
    silenced: list[bool] = []
    monkeypatch.setattr(segcli.cli.console, "_silence_stdio", lambda: silenced.append(True))

    def broken(data: bytes) -> None:
        raise BrokenPipeError(32, "Broken pipe")

    monkeypatch.setattr(segcli.cli.predict, "write_stdout", broken)
    result = runner.invoke(app, ["predict", str(PHOTOS / "coffee.jpg"), "--json", "-", *FAST])
    assert result.exit_code == 141 and result.stderr == "" and silenced == [True]
    assert EXIT_BROKEN_PIPE == 128 + signal.SIGPIPE == 141  # segcli's code is the shell's convention


# ----------------------------------------------------------- 14: output folders
def test_output_folders_are_marked_and_skipped(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    loaded = use_fake_in_cli(monkeypatch)
    root = tmp_path / "in"
    write_images(root, {"a.png": 10, "sub/b.png": 11})

    first = _batch(root / "sub", root / "earlier")  # an earlier run's output, inside FOLDER
    assert first.exit_code == 0 and (root / "earlier" / OUTPUT_MARKER).is_file()
    predicted = runner.invoke(app, ["predict", str(root / "a.png"), "-o", str(root / "p"), *FAST])
    assert predicted.exit_code == 0 and (root / "p" / OUTPUT_MARKER).is_file()

    result = runner.invoke(app, ["batch", str(root), "-o", str(root / "now"), *FAST[:-1]])
    assert result.exit_code == 0, result.output
    assert result.stderr.splitlines() == [
        f"skipped {root / 'earlier'}: an earlier segcli output folder",
        f"skipped {root / 'p'}: an earlier segcli output folder",
    ]
    run = json.loads((root / "now" / "run.json").read_text())
    assert run["counts"]["done"] == 2, "overlays of earlier runs are not segmented"
    again = _batch(root, root / "now")  # -o inside FOLDER: excluded, resumes
    assert again.exit_code == 0
    assert json.loads((root / "now" / "run.json").read_text())["counts"]["skipped"] == 2

    n_loaded = len(loaded)
    (tmp_path / "link").symlink_to(root)
    for out in (root, tmp_path / "link", root / "."):
        result = _batch(root, out)
        assert result.exit_code == 2, result.output
        assert (
            result.stderr
            == f"usage error: --output {out} is the input folder itself; choose another output folder\n"
        )
    result = _batch(root / "earlier", tmp_path / "x")
    assert result.exit_code == 2 and "is a segcli output folder" in result.stderr
    assert len(loaded) == n_loaded, "no model loaded for a usage error"


# ----------------------------------------------------------- 15: usage errors
@pytest.mark.parametrize(
    ("command", "args", "message"),
    [
        ("predict", ["--save", "overlay,pdf"], "--save 'overlay,pdf': unknown output 'pdf'"),
        ("batch", ["--save", ","], "--save names no output"),
        (
            "predict",
            ["--classes", "cube,dragon", "--model", "blocks"],
            "unknown class 'dragon' for --model blocks",
        ),
        ("batch", ["--classes", "dragon", "--model", "coco"], "unknown class 'dragon' for --model coco"),
        ("predict", ["--model", "nope"], "unknown model 'nope'; choose one of: coco, coco-v2, blocks"),
        ("predict", ["--score-threshold", "2"], "--score-threshold must be in [0, 1], got 2.0"),
        ("predict", ["--max-pixels", "0"], "--max-pixels must be at least 1, got 0"),
        ("batch", ["--max-pixels", "-1"], "--max-pixels must be at least 1, got -1"),
        ("batch", ["--batch-size", "0"], "--batch-size must be at least 1, got 0"),
        (
            "predict",
            ["--json", "out.json"],
            "--json takes '-' (stdout), got 'out.json'; use --save json for files",
        ),
        ("compare", ["--semantic", "bogus"], "unknown --semantic 'bogus'"),
        ("compare", ["--max-pixels", "0"], "--max-pixels must be at least 1, got 0"),
    ],
)
def test_usage_errors_exit_2_before_any_model_loads(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, command: str, args: list[str], message: str
) -> None:
    loaded = use_fake_in_cli(monkeypatch)
    target = {
        "predict": ["predict", str(PHOTOS / "coffee.jpg")],
        "batch": ["batch", str(PHOTOS)],
        "compare": ["compare", "semantic-vs-instance", str(PHOTOS / "coffee.jpg")],
    }[command]
    result = runner.invoke(app, [*target, "-o", str(tmp_path / "o"), *args])
    assert result.exit_code == 2, result.output
    [line] = result.stderr.splitlines()
    assert line.startswith("usage error: ") and message in line
    assert loaded == [] and not (tmp_path / "o").exists()


def test_command_line_shapes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    loaded = use_fake_in_cli(monkeypatch)
    result = runner.invoke(app, ["predict", str(PHOTOS), "-o", str(tmp_path / "o")])
    assert (result.exit_code, result.stderr) == (
        2,
        f"usage error: {PHOTOS} is a folder: use segcli batch {PHOTOS} for folders\n",
    )
    image = PHOTOS / "coffee.jpg"
    result = runner.invoke(app, ["batch", str(image), "-o", str(tmp_path / "o")])
    assert result.exit_code == 2
    expected = f"usage error: {image} is a file, not a folder: use segcli predict for single images\n"
    assert result.stderr == expected
    assert loaded == []

    empty = tmp_path / "empty"
    (empty / "sub").mkdir(parents=True)
    (empty / "notes.txt").write_text("no images here")
    result = _batch(empty, tmp_path / "o2")
    assert (result.exit_code, result.stderr) == (1, f"error: no images found in {empty}\n")
    result = _batch(empty, tmp_path / "o2", "--no-recursive")
    assert (result.exit_code, result.stderr) == (
        1,
        f"error: no images found in {empty}; subfolders were not searched (--no-recursive)\n",
    )
    assert loaded == []

    version = runner.invoke(app, ["predict", str(image), "--version"])
    assert version.exit_code == 0 and version.stdout.startswith("segcli ")
    debug = runner.invoke(
        app, ["predict", str(image), "-o", str(tmp_path / "o3"), "--max-pixels", "0", "--debug"]
    )
    assert debug.exit_code == 2 and "Traceback" in debug.stderr
    assert debug.stderr.splitlines()[-1] == "usage error: --max-pixels must be at least 1, got 0"
    dashed = runner.invoke(app, ["predict", "--", "--debug"])  # a file called --debug: not found
    assert dashed.exit_code == 2 and "Traceback" not in dashed.stderr
    assert "Invalid value for 'IMAGES...': path '--debug' does not exist." in dashed.stderr


def test_model_names_and_classes_any_case() -> None:
    from segcli.cli.options import ModelOptions

    settings = ModelOptions(model="BLOCKS", classes="Cube,SPHERE").check()
    assert settings.classes == ("Cube", "SPHERE")
    with pytest.raises(SegcliError, match="unknown class 'dragon'"):
        ModelOptions(model="Coco", classes="person,dragon").check()
    ModelOptions(model="coco", classes="dragon", weights=Path("own.pt")).check()  # its own names: later


# ----------------------------------------------------------- 16: messages
def test_semantic_offline_error_names_its_file_and_torch_stays_quiet(
    capfd: pytest.CaptureFixture[str],
) -> None:
    from segcli.models.weights import load_model

    with pytest.raises(SegcliError) as err:
        load_model("lraspp", task="semantic", device="cpu")
    message = str(err.value)
    assert message.startswith("the lraspp weights lraspp_mobilenet_v3_large-")
    assert "COCO weights" not in message and "weights=PATH" in message  # the Python hint
    out, errs = capfd.readouterr()
    assert out == "" and errs == "", "torch's own 'Downloading:' line stays hidden"
