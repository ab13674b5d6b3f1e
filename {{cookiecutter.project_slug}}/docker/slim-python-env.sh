#!/bin/sh
# Make the image's Python environment smaller without changing what runs; every Dockerfile
# recipe runs this in its build stage (it never reaches the final image):
#
#   sh /tmp/slim-python-env.sh /opt/venv/bin/python
#
# - tests, C and Cython sources and templates, headers, type stubs, static libraries: nothing
#   imports them;
# - shared objects stripped of debug info and symbol tables (uvloop's alone shrinks by 11 MB),
#   each checked to still load afterwards, else put back: stripping breaks the libraries that
#   auditwheel patched, and those stay as they came (skipped where the OS has no `strip`);
# - third-party packages keep only their compiled bytecode, not the .py beside it (about 30 MB):
#   tracebacks still name the file, line and function, without the line's text. Build with
#   `make build KEEP_SOURCES=1` if a library needs its own source at run time (TorchScript does).
set -eu
python=${1:?usage: slim-python-env.sh PYTHON}
site=$("$python" -c 'import sysconfig; print(sysconfig.get_path("purelib"))')

# A directory-walk in Python, not find(1): some base images have no findutils.
"$python" - "$site" <<'PY'
import pathlib, shutil, sys
site = pathlib.Path(sys.argv[1])
unused = {".pyx", ".pxd", ".pxi", ".c", ".cpp", ".tp", ".h", ".hpp", ".pyi", ".a"}
for path in sorted(site.rglob("*"), reverse=True):  # deepest first
    if path.is_dir() and path.name == "tests":
        shutil.rmtree(path, ignore_errors=True)
    elif path.is_file() and path.suffix in unused:
        path.unlink()
PY

if command -v strip >/dev/null 2>&1; then
    "$python" - "$site" <<'PY'
import pathlib, re, shutil, subprocess, sys
for library in pathlib.Path(sys.argv[1]).rglob("*.so*"):
    if not library.is_file() or not re.search(r"\.so(\.\d+)*$", library.name):
        continue
    backup = shutil.copy2(library, "/tmp/unstripped")
    subprocess.run(["strip", "--strip-unneeded", str(library)], check=False)
    # A fresh process per library: one process would reuse a library already loaded as another's
    # dependency and miss that strip broke this copy of it.
    loads = [sys.executable, "-c", "import ctypes, sys; ctypes.CDLL(sys.argv[1])", str(library)]
    if subprocess.run(loads, capture_output=True).returncode != 0:
        shutil.copy2(backup, library)  # strip broke it: keep it as it came
PY
    rm -f /tmp/unstripped
else
    echo "slim-python-env: no strip on this OS; shared libraries keep their symbols" >&2
fi

if [ "${KEEP_SOURCES:-0}" != "1" ]; then
    "$python" -m compileall -q -b -f -j 0 "$site"
    "$python" - "$site" <<'PY'
import pathlib, shutil, sys
for path in sorted(pathlib.Path(sys.argv[1]).rglob("*"), reverse=True):
    if path.is_dir() and path.name == "__pycache__":
        shutil.rmtree(path, ignore_errors=True)
    elif path.is_file() and path.suffix == ".py":
        path.unlink()
PY
fi
