"""prompts/ ships inside the wheel and is found from a non-editable install."""

import os
import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_wheel_carries_prompts_and_installed_package_finds_them(tmp_path):
    wheel_dir = tmp_path / "wheels"
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", str(ROOT), "--no-deps", "--no-build-isolation", "-q", "-w", str(wheel_dir)],
        check=True, capture_output=True, text=True, timeout=300,
    )
    (wheel,) = wheel_dir.glob("tripost-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    shipped = [p.relative_to(ROOT / "prompts").as_posix() for p in (ROOT / "prompts").rglob("*")
               if p.is_file() and "__pycache__" not in p.parts and p.suffix in {".txt", ".md", ".json", ".py"}]
    assert shipped, "prompts/ is empty"
    for rel in shipped:
        assert f"tripost/_prompts/{rel}" in names, rel
    for data in (ROOT / "tripost" / "tasks" / "data").glob("*"):
        assert f"tripost/tasks/data/{data.name}" in names, data.name

    # Install the wheel into a bare folder (no editable finder) and ask the
    # installed package where its prompts are, from outside the source tree.
    target = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", str(target), str(wheel)],
                   check=True, capture_output=True, text=True, timeout=300)
    probe = "import tripost.paths as p; d = p.prompts_dir(); print(d); print(sorted(x.name for x in d.iterdir()))"
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    out = subprocess.run([sys.executable, "-I", "-c", f"import sys; sys.path.insert(0, {str(target)!r}); {probe}"],
                         cwd=tmp_path, capture_output=True, text=True, env=env, check=True).stdout.splitlines()
    assert out[0].startswith(str(target)), out
    for rel in shipped:
        if "/" not in rel:
            assert rel in out[1]
