"""Bad-input errors name the field, the value and what is allowed; a long value is cut in the middle."""

from __future__ import annotations

from coopsim.errors import InputError


def test_a_long_value_keeps_both_ends_so_a_path_keeps_its_file_name():
    path = "/tmp/" + "a" * 200 + "/missing.toml"
    text = str(InputError("file", path, "an existing TOML file"))
    assert "missing.toml" in text and "/tmp/" in text and "..." in text
    assert "file=" in text and "an existing TOML file" in text
    assert len(text) < 140  # the value is cut to 80 characters


def test_a_short_value_is_shown_whole():
    assert "file='a.toml'" in str(InputError("file", "a.toml", "an existing TOML file"))
