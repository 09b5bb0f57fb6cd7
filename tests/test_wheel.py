"""The built wheel stands on its own: installed into a fresh virtualenv (no source tree on the
path), it ships the Avro contracts with their history and a console script per entry point."""

from __future__ import annotations

import subprocess
import sys
import venv
from pathlib import Path

from wire import history, serde

ROOT = Path(__file__).resolve().parents[1]
SCRIPTS = ("execution-processor", "execution-gateway", "execution-mock-oms", "execution-status", "execution-schemas",
           "execution-publish-proposal", "execution-sign-webhook", "execution-fix-adapter", "local-kafka", "local-registry",
           "local-fix")


def run(*command: str | Path, cwd: Path) -> str:
    completed = subprocess.run([str(part) for part in command], cwd=cwd, capture_output=True, text=True, timeout=240)
    assert completed.returncode == 0, f"{command}:\n{completed.stdout}\n{completed.stderr}"
    return completed.stdout


def test_wheel_installed_in_a_fresh_venv_imports_wire_serde_with_its_schemas_and_has_every_console_script(
        tmp_path: Path) -> None:
    dist = tmp_path / "dist"
    run(sys.executable, "-m", "build", "--wheel", "--outdir", dist, ROOT, cwd=ROOT)
    (wheel,) = dist.glob("execution_integration-*.whl")
    venv.EnvBuilder(with_pip=True).create(tmp_path / "venv")
    bin_dir = tmp_path / "venv" / "bin"
    run(bin_dir / "python", "-m", "pip", "install", "--disable-pip-version-check", "-q", wheel, cwd=tmp_path)

    # Run from an empty directory, so nothing of the source tree can be imported.
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    out = run(bin_dir / "python", "-c", (
        "import wire.serde as serde, wire.history as history, schemas\n"
        "from wire.examples import SAMPLES\n"
        "name, _, record = SAMPLES[0]\n"
        "data = serde.encode(name, record)\n"
        "assert serde.decode(name, data, topic='t', partition=0, offset=0) == record\n"
        "print(schemas.DIRECTORY, len(history.load_history()), serde.codec('OrderEvent').fingerprint.hex())\n"
    ), cwd=elsewhere)
    directory, versions, fingerprint = out.split()
    assert "site-packages" in directory and ROOT.as_posix() not in directory
    assert int(versions) == len(history.load_history())  # every topic schema's history shipped
    assert fingerprint == serde.codec("OrderEvent").fingerprint.hex()
    for script in SCRIPTS:
        assert (bin_dir / script).exists(), script
    for script in ("execution-status", "execution-publish-proposal", "execution-sign-webhook", "local-registry"):
        assert "usage" in run(bin_dir / script, "--help", cwd=elsewhere), script
    run(bin_dir / "execution-schemas", "check", cwd=elsewhere)
