"""Cache keys: the code stamp changes with the code, not with its docstrings."""

from __future__ import annotations

from ctpmaps.nn.cache import NLR_CODE, _memo_digest, code_stamp, source_digest

CODE = '''"""Module doc."""


def fit(x):
    """Fit doc."""
    # a comment
    return 2 * x


class Model:
    """Class doc."""

    def run(self):
        """Only a docstring."""
'''


def digest(tmp_path, name: str, text: str) -> str:
    path = tmp_path / name
    path.write_text(text)
    return source_digest(str(path))


def test_docstrings_comments_and_layout_do_not_change_the_digest(tmp_path) -> None:
    base = digest(tmp_path, "a.py", CODE)
    edited = CODE.replace("Fit doc.", "Fits, as measured: 3 %.").replace("# a comment", "")
    edited = edited.replace("Module doc.", "Another\\n\\nmodule doc.").replace("2 * x", "2*x")
    assert digest(tmp_path, "b.py", edited) == base
    assert digest(tmp_path, "c.py", CODE.replace('"""Only a docstring."""', "pass")) == base


def test_code_changes_change_the_digest(tmp_path) -> None:
    base = digest(tmp_path, "a.py", CODE)
    assert digest(tmp_path, "b.py", CODE.replace("2 * x", "3 * x")) != base
    assert digest(tmp_path, "c.py", CODE.replace("return 2 * x", 'return "2"')) != base
    assert digest(tmp_path, "d.py", CODE + "\nLIMIT = 1\n") != base


def test_an_edited_file_is_read_again(tmp_path) -> None:
    """`code_stamp` memoises each file's digest by its size and time."""
    path = tmp_path / "a.py"

    def stamp() -> str:
        st = path.stat()
        return _memo_digest(str(path), st.st_size, st.st_mtime_ns)

    path.write_text(CODE)
    first = stamp()
    path.write_text(CODE.replace("2 * x", "20 * x"))
    assert stamp() != first
    assert stamp() == source_digest(path)
    assert code_stamp(*NLR_CODE) == code_stamp(*NLR_CODE)
