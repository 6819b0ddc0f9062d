"""The Japanese font every generated document embeds (the printed QR stand, the KPI charts,
statements): IPAex Gothic (IPA Font License v1.0, which allows embedding), as the `japanize-kivy`
package ships it, so a machine without system fonts or internet still renders Japanese rather
than boxes. Only the font file is read: the package and the GUI toolkit it depends on (Kivy) are
never imported."""

from __future__ import annotations

from functools import cache
from importlib.metadata import distribution
from pathlib import Path

JA_FONT = "IPAexGothic"
JA_FONT_FILE = "ipaexg.ttf"
JA_FONT_PACKAGE = "japanize-kivy"


@cache
def japanese_font_file() -> Path:
    """IPAex Gothic as installed with its package, found through the package's file list so that
    a reorganised package still finds it (and nothing imports the package)."""
    package = distribution(JA_FONT_PACKAGE)
    found = [f for f in package.files or () if f.name == JA_FONT_FILE]
    assert len(found) == 1, f"{JA_FONT_PACKAGE} ships one {JA_FONT_FILE}; found {found}"
    return Path(str(package.locate_file(found[0])))
