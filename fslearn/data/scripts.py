"""Writing systems as sets of letters, for the printed-glyph dataset (:mod:`fslearn.data.glyphs`).

A script is named by its Unicode name (``"Greek"``, ``"Canadian Syllabics"``) and is one or more
Unicode blocks. Its letters are the code points of those blocks that

* are letters (general category ``Lu``, ``Ll``, ``Lt`` or ``Lo``; modifier letters ``Lm`` are
  left out: they are small raised copies of other letters),
* have no Unicode decomposition (``é`` is ``e`` plus an accent, ``ª`` a superscript ``a``: only
  base letters become classes, as Omniglot's characters are), and
* have a Unicode name that starts with the script's name (a guard against a mistyped block).

Which of them become classes also depends on the fonts that have a glyph for them
(:mod:`fslearn.data.glyphs`). Python's ``unicodedata`` decides the categories and names; its
Unicode version is recorded with every dataset built.

Scripts with thousands of ideographs or syllables (Han, Hangul, Yi, Tangut, Egyptian hieroglyphs,
cuneiform) are left out: one of them would outnumber all the others together.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass

__all__ = ["OMNIGLOT_SCRIPTS", "SCRIPTS", "Script", "find_scripts", "script_letters"]

_LETTER_CATEGORIES = frozenset({"Lu", "Ll", "Lt", "Lo"})


@dataclass(frozen=True)
class Script:
    """A writing system: its name, its Unicode blocks (inclusive ranges of code points) and the
    words its letters' Unicode names start with (default: the name in capitals)."""

    name: str
    blocks: tuple[tuple[int, int], ...]
    prefixes: tuple[str, ...] = ()

    @property
    def name_prefixes(self) -> tuple[str, ...]:
        return self.prefixes or (self.name.upper(),)


def _s(name: str, *blocks: tuple[int, int], prefixes: tuple[str, ...] = ()) -> Script:
    return Script(name, tuple(blocks), prefixes)


#: Every script the dataset can draw, in the order of Unicode's blocks (the order of classes).
SCRIPTS: tuple[Script, ...] = (
    # Basic Latin, Latin-1 Supplement and Latin Extended-A: base letters such as ß, ø, ł, ŋ.
    _s("Latin", (0x0041, 0x007A), (0x00C0, 0x00FF), (0x0100, 0x017F)),
    _s("Greek", (0x0370, 0x03FF)),
    _s("Cyrillic", (0x0400, 0x04FF)),
    _s("Armenian", (0x0530, 0x058F)),
    _s("Hebrew", (0x0590, 0x05FF)),
    _s("Arabic", (0x0600, 0x06FF)),
    _s("Syriac", (0x0700, 0x074F)),
    _s("Thaana", (0x0780, 0x07BF)),
    _s("NKo", (0x07C0, 0x07FF)),
    _s("Samaritan", (0x0800, 0x083F)),
    _s("Mandaic", (0x0840, 0x085F)),
    _s("Devanagari", (0x0900, 0x097F)),
    _s("Bengali", (0x0980, 0x09FF)),
    _s("Gurmukhi", (0x0A00, 0x0A7F)),
    _s("Gujarati", (0x0A80, 0x0AFF)),
    _s("Oriya", (0x0B00, 0x0B7F)),
    _s("Tamil", (0x0B80, 0x0BFF)),
    _s("Telugu", (0x0C00, 0x0C7F)),
    _s("Kannada", (0x0C80, 0x0CFF)),
    _s("Malayalam", (0x0D00, 0x0D7F)),
    _s("Sinhala", (0x0D80, 0x0DFF)),
    _s("Thai", (0x0E00, 0x0E7F)),
    _s("Lao", (0x0E80, 0x0EFF)),
    _s("Tibetan", (0x0F00, 0x0FFF)),
    _s("Myanmar", (0x1000, 0x109F)),
    _s("Georgian", (0x10A0, 0x10FF)),
    _s("Ethiopic", (0x1200, 0x137F)),
    _s("Cherokee", (0x13A0, 0x13FF)),
    _s("Canadian Syllabics", (0x1400, 0x167F)),
    _s("Ogham", (0x1680, 0x169F)),
    _s("Runic", (0x16A0, 0x16FF)),
    _s("Tagalog", (0x1700, 0x171F)),
    _s("Hanunoo", (0x1720, 0x173F)),
    _s("Buhid", (0x1740, 0x175F)),
    _s("Tagbanwa", (0x1760, 0x177F)),
    _s("Khmer", (0x1780, 0x17FF)),
    _s("Mongolian", (0x1800, 0x18AF)),
    _s("Limbu", (0x1900, 0x194F)),
    _s("Tai Le", (0x1950, 0x197F)),
    _s("New Tai Lue", (0x1980, 0x19DF)),
    _s("Buginese", (0x1A00, 0x1A1F)),
    _s("Tai Tham", (0x1A20, 0x1AAF)),
    _s("Balinese", (0x1B00, 0x1B7F)),
    _s("Sundanese", (0x1B80, 0x1BBF)),
    _s("Batak", (0x1BC0, 0x1BFF)),
    _s("Lepcha", (0x1C00, 0x1C4F)),
    _s("Ol Chiki", (0x1C50, 0x1C7F)),
    _s("Glagolitic", (0x2C00, 0x2C5F)),
    _s("Coptic", (0x2C80, 0x2CFF)),
    _s("Tifinagh", (0x2D30, 0x2D7F)),
    _s("Lisu", (0xA4D0, 0xA4FF)),
    _s("Vai", (0xA500, 0xA63F)),
    _s("Bamum", (0xA6A0, 0xA6FF)),
    _s("Syloti Nagri", (0xA800, 0xA82F)),
    _s("Phags-pa", (0xA840, 0xA87F)),
    _s("Saurashtra", (0xA880, 0xA8DF)),
    _s("Kayah Li", (0xA900, 0xA92F)),
    _s("Rejang", (0xA930, 0xA95F)),
    _s("Javanese", (0xA980, 0xA9DF)),
    _s("Cham", (0xAA00, 0xAA5F)),
    _s("Tai Viet", (0xAA80, 0xAADF)),
    _s("Meetei Mayek", (0xABC0, 0xABFF)),
    _s("Linear B", (0x10000, 0x1007F)),
    _s("Lycian", (0x10280, 0x1029F)),
    _s("Carian", (0x102A0, 0x102DF)),
    _s("Old Italic", (0x10300, 0x1032F)),
    _s("Gothic", (0x10330, 0x1034F)),
    _s("Old Permic", (0x10350, 0x1037F)),
    _s("Ugaritic", (0x10380, 0x1039F)),
    _s("Old Persian", (0x103A0, 0x103DF)),
    _s("Deseret", (0x10400, 0x1044F)),
    _s("Shavian", (0x10450, 0x1047F)),
    _s("Osmanya", (0x10480, 0x104AF)),
    _s("Osage", (0x104B0, 0x104FF)),
    _s("Elbasan", (0x10500, 0x1052F)),
    _s("Caucasian Albanian", (0x10530, 0x1056F)),
    _s("Linear A", (0x10600, 0x1077F)),
    _s("Cypriot", (0x10800, 0x1083F), prefixes=("CYPRIOT",)),
    _s("Imperial Aramaic", (0x10840, 0x1085F)),
    _s("Palmyrene", (0x10860, 0x1087F)),
    _s("Nabataean", (0x10880, 0x108AF)),
    _s("Hatran", (0x108E0, 0x108FF)),
    _s("Phoenician", (0x10900, 0x1091F)),
    _s("Lydian", (0x10920, 0x1093F)),
    _s("Meroitic", (0x10980, 0x109FF),
       prefixes=("MEROITIC HIEROGLYPHIC", "MEROITIC CURSIVE")),
    _s("Kharoshthi", (0x10A00, 0x10A5F)),
    _s("Old South Arabian", (0x10A60, 0x10A7F)),
    _s("Old North Arabian", (0x10A80, 0x10A9F)),
    _s("Manichaean", (0x10AC0, 0x10AFF)),
    _s("Avestan", (0x10B00, 0x10B3F)),
    _s("Inscriptional Parthian", (0x10B40, 0x10B5F)),
    _s("Inscriptional Pahlavi", (0x10B60, 0x10B7F)),
    _s("Psalter Pahlavi", (0x10B80, 0x10BAF)),
    _s("Old Turkic", (0x10C00, 0x10C4F)),
    _s("Old Hungarian", (0x10C80, 0x10CFF)),
    _s("Hanifi Rohingya", (0x10D00, 0x10D3F)),
    _s("Yezidi", (0x10E80, 0x10EBF)),
    _s("Old Sogdian", (0x10F00, 0x10F2F)),
    _s("Sogdian", (0x10F30, 0x10F6F)),
    _s("Elymaic", (0x10FE0, 0x10FFF)),
    _s("Brahmi", (0x11000, 0x1107F)),
    _s("Kaithi", (0x11080, 0x110CF)),
    _s("Sora Sompeng", (0x110D0, 0x110FF)),
    _s("Chakma", (0x11100, 0x1114F)),
    _s("Mahajani", (0x11150, 0x1117F)),
    _s("Sharada", (0x11180, 0x111DF)),
    _s("Khojki", (0x11200, 0x1124F)),
    _s("Multani", (0x11280, 0x112AF)),
    _s("Khudawadi", (0x112B0, 0x112FF)),
    _s("Grantha", (0x11300, 0x1137F)),
    _s("Newa", (0x11400, 0x1147F)),
    _s("Tirhuta", (0x11480, 0x114DF)),
    _s("Siddham", (0x11580, 0x115FF)),
    _s("Modi", (0x11600, 0x1165F)),
    _s("Takri", (0x11680, 0x116CF)),
    _s("Ahom", (0x11700, 0x1174F)),
    _s("Dogra", (0x11800, 0x1184F)),
    _s("Warang Citi", (0x118A0, 0x118FF)),
    _s("Zanabazar Square", (0x11A00, 0x11A4F)),
    _s("Soyombo", (0x11A50, 0x11AAF)),
    _s("Pau Cin Hau", (0x11AC0, 0x11AFF)),
    _s("Bhaiksuki", (0x11C00, 0x11C6F)),
    _s("Marchen", (0x11C70, 0x11CBF)),
    _s("Masaram Gondi", (0x11D00, 0x11D5F)),
    _s("Gunjala Gondi", (0x11D60, 0x11DAF)),
    _s("Mro", (0x16A40, 0x16A6F)),
    _s("Bassa Vah", (0x16AD0, 0x16AFF)),
    _s("Pahawh Hmong", (0x16B00, 0x16B8F)),
    _s("Medefaidrin", (0x16E40, 0x16E9F)),
    _s("Miao", (0x16F00, 0x16F9F)),
    _s("Duployan", (0x1BC00, 0x1BC9F)),
    _s("Nyiakeng Puachue Hmong", (0x1E100, 0x1E14F)),
    _s("Wancho", (0x1E2C0, 0x1E2FF)),
    _s("Mende Kikakui", (0x1E800, 0x1E8DF)),
    _s("Adlam", (0x1E900, 0x1E95F)),
)


#: The Unicode script of each Omniglot alphabet written in one (the invented ones, Braille,
#: Japanese and Korean have none here). A model trained on Omniglot has seen these scripts'
#: letters, drawn by hand: ``--exclude omniglot`` leaves them out, so that every class is new.
OMNIGLOT_SCRIPTS: dict[str, tuple[str, ...]] = {
    # background alphabets
    "Anglo-Saxon_Futhorc": ("Runic",),
    "Armenian": ("Armenian",),
    "Asomtavruli_(Georgian)": ("Georgian",),
    "Balinese": ("Balinese",),
    "Bengali": ("Bengali",),
    "Blackfoot_(Canadian_Aboriginal_Syllabics)": ("Canadian Syllabics",),
    "Burmese_(Myanmar)": ("Myanmar",),
    "Cyrillic": ("Cyrillic",),
    # Early Aramaic letters are drawn much like Imperial Aramaic's and Phoenician's
    "Early_Aramaic": ("Imperial Aramaic", "Phoenician"),
    "Grantha": ("Grantha",),
    "Greek": ("Greek",),
    "Gujarati": ("Gujarati",),
    "Hebrew": ("Hebrew",),
    "Inuktitut_(Canadian_Aboriginal_Syllabics)": ("Canadian Syllabics",),
    "Latin": ("Latin",),
    "Malay_(Jawi_-_Arabic)": ("Arabic",),
    "Mkhedruli_(Georgian)": ("Georgian",),
    "N_Ko": ("NKo",),
    "Ojibwe_(Canadian_Aboriginal_Syllabics)": ("Canadian Syllabics",),
    "Sanskrit": ("Devanagari",),
    "Syriac_(Estrangelo)": ("Syriac",),
    "Tagalog": ("Tagalog",),
    "Tifinagh": ("Tifinagh",),
    # evaluation alphabets
    "Avesta": ("Avestan",),
    "Ge_ez": ("Ethiopic",),
    "Glagolitic": ("Glagolitic",),
    "Gurmukhi": ("Gurmukhi",),
    "Kannada": ("Kannada",),
    "Malayalam": ("Malayalam",),
    "Manipuri": ("Meetei Mayek",),
    "Mongolian": ("Mongolian",),
    "Old_Church_Slavonic_(Cyrillic)": ("Cyrillic",),
    "Oriya": ("Oriya",),
    "Sylheti": ("Syloti Nagri",),
    "Syriac_(Serto)": ("Syriac",),
    "Tibetan": ("Tibetan",),
}


def script_letters(script: Script) -> list[str]:
    """The letters of ``script`` (see the module docstring), in code-point order."""
    letters = []
    for start, end in script.blocks:
        for code in range(start, end + 1):
            char = chr(code)
            if (unicodedata.category(char) in _LETTER_CATEGORIES
                    and not unicodedata.decomposition(char)
                    and unicodedata.name(char, "").startswith(script.name_prefixes)):
                letters.append(char)
    return letters


def _key(name: str) -> str:
    return "".join(c for c in name.lower() if c.isalnum())


def _keys(names: Sequence[str], what: str) -> set[str]:
    """The scripts' keys; ``"omniglot"`` stands for every script of :data:`OMNIGLOT_SCRIPTS`."""
    known = {_key(script.name) for script in SCRIPTS}
    keys = set()
    for name in names:
        if _key(name) == "omniglot":
            keys |= {_key(s) for scripts in OMNIGLOT_SCRIPTS.values() for s in scripts}
        elif _key(name) in known:
            keys.add(_key(name))
        else:
            raise ValueError(f"unknown script {name!r} in {what}: choose from "
                             f"{', '.join(s.name for s in SCRIPTS)} (or omniglot: every script "
                             f"of an Omniglot alphabet).")
    return keys


def find_scripts(names: Sequence[str] | None, exclude: Sequence[str] = ()) -> list[Script]:
    """The scripts named (case, spaces, hyphens and underscores ignored; ``"omniglot"``: the
    scripts of Omniglot's alphabets), less those of ``exclude``, in :data:`SCRIPTS`'s order;
    ``names=None``: all of them.

    Raises:
        ValueError: a name is not a script of :data:`SCRIPTS` (the message lists them).
    """
    wanted = (_keys(names, "--scripts") if names is not None
              else {_key(script.name) for script in SCRIPTS})
    wanted -= _keys(exclude, "--exclude")
    return [script for script in SCRIPTS if _key(script.name) in wanted]
