"""tools/get_chromium.sh, the step of `make test` that gets Chromium on a fresh machine: run against fake commands (a PATH
of scripts that log their calls), so every branch is exercised without touching this machine's Chromium or apt."""
import shutil
import subprocess

import pytest

from conftest import REPO

SCRIPT = REPO / "tools" / "get_chromium.sh"
CHMOD = shutil.which("chmod")  # the fake PATH holds only the fakes


def fake(bin_dir, name, body):
    "A fake command `name` on the fake PATH: logs its arguments to calls.log, then runs `body` (bash)."
    path = bin_dir / name
    path.write_text(f'#!/bin/bash\necho "{name} ${{*%%$\'\\n\'*}}" >> "{bin_dir}/calls.log"\n{body}\n')  # first line of the arguments
    path.chmod(0o755)


def machine(tmp_path, uid="0", apt=None, playwright_download=True):
    "A fake machine without Chromium: `id -u` says `uid`; apt-get exists when `apt` is 'works' or 'needs-update'."
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    fake(bin_dir, "id", f"echo {uid}")
    make_chromium = f'printf "#!/bin/bash\\n" > "{bin_dir}/chromium"; {CHMOD} +x "{bin_dir}/chromium"'
    if apt == "works": fake(bin_dir, "apt-get", f'[ "$1" = install ] && {{ {make_chromium}; }}; exit 0')
    if apt == "needs-update":  # a fresh container: empty package lists, so install fails until update ran
        fake(bin_dir, "apt-get", f'[ "$1" = update ] && : > "{bin_dir}/updated"; '
                                 f'[ "$1" = install ] && {{ [ -f "{bin_dir}/updated" ] || exit 100; {make_chromium}; }}; exit 0')
    own = tmp_path / "ms-playwright" / "chrome"
    own.parent.mkdir()
    query = f'if [ "$1" = -c ]; then [ -f "{own}" ] && echo "{own}"; exit 0; fi'
    download = f': > "{own}"' if playwright_download else "exit 1"
    fake(bin_dir, "python", f'{query}\n[ "$*" = "-m playwright install chromium" ] && {{ {download}; }}')
    return bin_dir


def get_chromium(bin_dir, **env):
    environment = {"PATH": str(bin_dir), "PYTHON": "python", "HOME": str(bin_dir), **env}
    result = subprocess.run(["/bin/bash", str(SCRIPT)], env=environment, capture_output=True, text=True, timeout=60)
    calls = (bin_dir / "calls.log").read_text().splitlines() if (bin_dir / "calls.log").exists() else []
    return result, [c for c in calls if not c.startswith(("id ", "python -c"))]


def test_an_installed_chromium_is_used_as_it_is(tmp_path):
    bin_dir = machine(tmp_path, apt="works")
    fake(bin_dir, "chromium-browser", "")
    result, calls = get_chromium(bin_dir)
    assert result.returncode == 0 and f"Chromium: {bin_dir}/chromium-browser (found)" in result.stdout
    assert calls == []  # nothing installed, nothing downloaded


def test_root_on_debian_installs_it_with_apt_get(tmp_path):
    bin_dir = machine(tmp_path, apt="works")
    result, calls = get_chromium(bin_dir)
    assert result.returncode == 0 and "installed with apt-get" in result.stdout, result
    assert calls == ["apt-get install -y chromium"]


def test_root_on_a_fresh_container_updates_the_lists_first(tmp_path):
    bin_dir = machine(tmp_path, apt="needs-update")
    result, calls = get_chromium(bin_dir)
    assert result.returncode == 0 and "installed with apt-get" in result.stdout, result
    assert calls == ["apt-get install -y chromium", "apt-get update", "apt-get install -y chromium"]


def test_without_root_playwright_downloads_its_own(tmp_path):
    bin_dir = machine(tmp_path, uid="1000", apt="works")
    result, calls = get_chromium(bin_dir)
    assert result.returncode == 0 and f"Chromium: {tmp_path}/ms-playwright/chrome (downloaded by Playwright)" in result.stdout, result
    assert calls == ["python -m playwright install chromium"]  # apt-get is not tried without root
    result, calls = get_chromium(bin_dir)  # the next time it is found
    assert result.returncode == 0 and "(found)" in result.stdout


@pytest.mark.parametrize("uid, apt", [("0", None), ("1000", "works")])
def test_when_nothing_works_one_line_says_how(tmp_path, uid, apt):
    bin_dir = machine(tmp_path, uid=uid, apt=apt, playwright_download=False)
    if apt: (bin_dir / "apt-get").write_text("#!/bin/bash\nexit 100\n")
    result, _ = get_chromium(bin_dir)
    assert result.returncode == 1
    assert len(result.stderr.strip().splitlines()) == 1
    assert "apt-get install -y chromium" in result.stderr and "playwright install chromium" in result.stderr
    assert "PPAD_SKIP_BROWSER=1" in result.stderr


def test_skipping_the_browser_needs_nothing(tmp_path):
    bin_dir = machine(tmp_path, apt="works")
    result, calls = get_chromium(bin_dir, PPAD_SKIP_BROWSER="1")
    assert result.returncode == 0 and calls == []
