"""The README's Python examples print what the README shows, every time: each example is run (in a fresh process, twice in
a row) and what it prints is compared with the printed output under it. README.md is made from nbs/index.ipynb."""
import json
import os
import subprocess
import sys
import textwrap

import nbformat

from conftest import REPO

RUNNER = """
import contextlib, io, json, sys
namespace, printed = {"__name__": "__main__"}, []
for number, code in enumerate(json.load(sys.stdin)):
    out = io.StringIO()
    with contextlib.redirect_stdout(out): exec(compile(code, f"README example {number + 1}", "exec"), namespace)
    printed.append(out.getvalue())
print(json.dumps(printed))
"""


def readme_examples(text: str) -> list:
    "(code, printed output) of each Python example of a README made by nbconvert: a fenced block without a language (shell and "
    "text blocks name theirs) and the indented block under it."
    examples, lines, i = [], text.splitlines(), 0
    while i < len(lines):
        if not lines[i].startswith("```"): i += 1; continue
        language, end = lines[i][3:].strip(), lines.index("```", i + 1)
        code, i = lines[i + 1:end], end + 1
        if language not in ("", "python"): continue
        output = []
        while i < len(lines) and (not lines[i].strip() or lines[i].startswith("    ")): output.append(lines[i]); i += 1
        examples.append(("\n".join(code) + "\n", textwrap.dedent("\n".join(output)).strip("\n")))
    return examples


def run_examples(codes, cwd) -> list:
    "What each example prints, run one after another in one fresh Python (outside the repository, as a user would)."
    env = {k: v for k, v in os.environ.items() if k != "IN_TEST"}
    result = subprocess.run([sys.executable, "-c", RUNNER], input=json.dumps(codes), capture_output=True, text=True,
                            cwd=cwd, env=env, timeout=300)
    assert result.returncode == 0, result.stderr
    return [printed.strip("\n") for printed in json.loads(result.stdout)]


def test_every_code_cell_of_the_index_notebook_is_an_example_with_its_output():
    examples = readme_examples((REPO / "README.md").read_text())
    cells = [c for c in nbformat.read(REPO / "nbs" / "index.ipynb", as_version=4).cells if c.cell_type == "code"]
    assert [code.strip() for code, _ in examples] == [c.source.strip() for c in cells]
    assert all(output for _, output in examples), "an example without printed output"


def test_the_readme_examples_print_what_the_readme_shows_twice_in_a_row(tmp_path):
    examples = readme_examples((REPO / "README.md").read_text())
    shown = [output for _, output in examples]
    for attempt in (1, 2):
        assert run_examples([code for code, _ in examples], tmp_path) == shown, f"run {attempt}: the README's output is not what its code prints"


def test_the_example_parser_reads_nbconvert_markdown():
    text = "```bash\nmake demo\n```\n\n```\nprint(1)\nprint(2)\n```\n\n    1\n    2\n\n\nprose\n"
    assert readme_examples(text) == [("print(1)\nprint(2)\n", "1\n2")]
