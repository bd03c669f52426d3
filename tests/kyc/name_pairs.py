"""A deterministic, labelled set of SYNTHETIC name pairs for screening quality.

Positives are the same party written differently (transliteration, Cyrillic
script, word order, "Last, First", accents, one typo, legal suffix changes);
negatives are different parties, including hard ones sharing a surname.
"""

# ruff: noqa: RUF001  (Cyrillic on purpose)
from __future__ import annotations

import random
from dataclasses import dataclass

FIRST = [
    "Aleksandr", "Borislav", "Dmitrij", "Yevgeniy", "Mikhail", "Svetlana", "Oksana",
    "Tatyana", "Yusuf", "Mohammed", "Khalid", "Fatima", "Rustam", "Zhanna", "Vladislav",
    "Giorgos", "Ekaterina", "Anatoliy", "Nadezhda", "Timur", "Lyudmila", "Gennadiy",
    "Orhan", "Leilani", "Benedikt", "Philippa", "Quentin", "Ingrid", "Teodor", "Marisol",
]  # fmt: skip
LAST = [
    "Kvetkin", "Vantsenko", "Dzhemalov", "Haranbi", "Mirnenko", "Sokolovskaya", "Prudnikov",
    "Abdelqadir", "Shevchuk", "Zakharchenko", "Oyelaran", "Nakashima", "Castellanos",
    "Vorontsev", "Belozerskiy", "Tchaikoff", "Grunwaldt", "Okonkwo", "Marchetti", "Lindqvist",
    "Papadakis", "Iskanderov", "Kovalenko", "Ferreira", "Holmgren", "Yablonsky", "Duvalier",
    "Rastrelli", "Quenneth", "Brisbois",
]  # fmt: skip
COMPANY = [
    "Zoltrava Maritime", "Qarsun Dynamics", "Velmora Precision", "Ostrel Aerotechnics",
    "Krasnel Optical Systems", "Tervino Logistics", "Umbral Photonics", "Halcyra Shipping",
    "Brennix Microdevices", "Sarvakh Engineering", "Dovren Chemical", "Marovska Trading",
]  # fmt: skip
SUFFIXES = ["LLC", "Ltd.", "GmbH", "JSC", "Co., Ltd.", "S.A.", "Limited", "Inc."]

TRANSLIT = [("ks", "x"), ("iy", "y"), ("yev", "ev"), ("kh", "h"), ("zh", "j"), ("ya", "ia"),
            ("yu", "iu"), ("ij", "iy"), ("ou", "u"), ("ph", "f"), ("dzh", "j"), ("tch", "ch"),
            ("off", "ov"), ("sky", "skiy"), ("q", "k"), ("ei", "ey"), ("ov", "off"),
            ("ph", "f"), ("f", "ph"), ("ll", "l"), ("ch", "tch"), ("ts", "tz"), ("c", "k"),
            ("w", "v"), ("ey", "ei"), ("mm", "m"), ("dt", "t")]  # fmt: skip
ACCENTS = {"a": "á", "e": "é", "i": "í", "o": "ö", "u": "ü", "c": "ç", "n": "ñ", "s": "š"}
TO_CYRILLIC = [("shch", "щ"), ("zh", "ж"), ("kh", "х"), ("ts", "ц"), ("ch", "ч"), ("sh", "ш"),
               ("yu", "ю"), ("ya", "я"), ("a", "а"), ("b", "б"), ("v", "в"), ("g", "г"),
               ("d", "д"), ("e", "е"), ("z", "з"), ("i", "и"), ("y", "й"), ("k", "к"),
               ("l", "л"), ("m", "м"), ("n", "н"), ("o", "о"), ("p", "п"), ("r", "р"),
               ("s", "с"), ("t", "т"), ("u", "у"), ("f", "ф")]  # fmt: skip


@dataclass(frozen=True)
class Pair:
    a: str
    b: str
    same: bool
    how: str


def _translit(rng: random.Random, name: str) -> str:
    lower = name.lower()
    options = [(s, t) for s, t in TRANSLIT if s in lower]
    if not options:
        return name.upper()
    src, dst = rng.choice(options)
    return lower.replace(src, dst).title()


def _cyrillic(name: str) -> str:
    out = name.lower()
    for latin, cyr in TO_CYRILLIC:
        out = out.replace(latin, cyr)
    return out.title()


def _accent(rng: random.Random, name: str) -> str:
    idx = [i for i, ch in enumerate(name) if ch in ACCENTS]
    chars = list(name)
    for i in rng.sample(idx, min(2, len(idx))):
        chars[i] = ACCENTS[chars[i]]
    return "".join(chars)


def _typo(rng: random.Random, name: str) -> str:
    i = rng.randrange(1, len(name) - 1)
    kind = rng.choice(["swap", "drop", "double"])
    if kind == "swap":
        return name[:i] + name[i + 1] + name[i] + name[i + 2 :]
    if kind == "drop":
        return name[:i] + name[i + 1 :]
    return name[:i] + name[i] + name[i:]


def generate(seed: int = 20260301, n_pos: int = 150, n_neg: int = 150) -> list[Pair]:
    rng = random.Random(seed)
    pairs: list[Pair] = []
    makers = ["reorder", "comma", "translit", "cyrillic", "accents", "typo", "company"]
    for i in range(n_pos):
        how = makers[i % len(makers)]
        first, last = rng.choice(FIRST), rng.choice(LAST)
        name = f"{first} {last}"
        if how == "reorder":
            other = f"{last} {first}"
        elif how == "comma":
            other = f"{last.upper()}, {first}"
        elif how == "translit":
            other = f"{_translit(rng, first)} {_translit(rng, last)}"
        elif how == "cyrillic":
            other = f"{_cyrillic(last)} {_cyrillic(first)}"
        elif how == "accents":
            other = f"{_accent(rng, first)} {_accent(rng, last)}"
        elif how == "typo":
            other = f"{first} {_typo(rng, last)}"
        else:
            base = rng.choice(COMPANY)
            name = f"{base} {rng.choice(SUFFIXES)}"
            other = f"{base.upper()} {rng.choice(SUFFIXES)}"
        pairs.append(Pair(name, other, True, how))
    for i in range(n_neg):
        if i % 5 == 0:  # hard: same surname, different given name
            f1, f2 = rng.sample(FIRST, 2)
            last = rng.choice(LAST)
            pairs.append(Pair(f"{f1} {last}", f"{f2} {last}", False, "same-surname"))
        elif i % 5 == 1:
            c1, c2 = rng.sample(COMPANY, 2)
            pairs.append(Pair(f"{c1} {rng.choice(SUFFIXES)}", f"{c2} LLC", False, "company"))
        else:
            f1, f2 = rng.sample(FIRST, 2)
            l1, l2 = rng.sample(LAST, 2)
            pairs.append(Pair(f"{f1} {l1}", f"{f2} {l2}", False, "different"))
    return pairs
