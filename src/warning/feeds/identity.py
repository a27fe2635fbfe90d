"""Resident identity numbers: checks, masking and keyed hashing.

A resident identity number (GB 11643-1999) has 18 characters: the 6-digit
administrative division code where it was issued, the birth date as
``YYYYMMDD``, a 3-digit sequence number (odd for men, even for women) and a
check character. The check character is ISO 7064 MOD 11-2 over the first 17
digits, with ``X`` for 10.

Raw numbers never leave this module unmasked: stored ids are an HMAC-SHA256
of the number under a secret key, and messages show ``mask_identity``.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import unicodedata
from collections.abc import Iterable
from datetime import datetime
from pathlib import Path

import numpy as np
import pandas as pd

IDENTITY_LENGTH = 18
# Weights 2**(17 - i) mod 11 of ISO 7064 MOD 11-2 for the 17 leading digits.
CHECK_WEIGHTS = np.array([pow(2, 17 - position, 11) for position in range(17)], dtype=np.int64)
# Check character for each value of the weighted sum modulo 11.
CHECK_CHARACTERS = "10X98765432"
# Hex digits kept of each HMAC: 96 bits, so that 10**8 people collide with
# probability about 6e-14. ``IdentityHasher`` still raises on a collision.
HASH_HEX_DIGITS = 24
# The earliest birth date accepted: identity numbers of people born earlier are implausible.
EARLIEST_BIRTH = pd.Timestamp("1880-01-01")

WRONG_LENGTH = "invalid identity number: not 18 characters"
NOT_DIGITS = "invalid identity number: the first 17 characters must be digits and the last a digit or X"
BAD_BIRTH_DATE = "invalid identity number: characters 7-14 are not a real birth date"
FUTURE_BIRTH_DATE = "invalid identity number: birth date after the delivery date"
BAD_CHECK_DIGIT = "invalid identity number: wrong check digit"
# A spreadsheet that reads the column as numbers keeps 15 significant digits: it shows
# 6.21121E+17, or turns the last three digits into zeros, and the export keeps that.
SPREADSHEET_NUMBER = (
    "invalid identity number: written as a number in exponent form, as a spreadsheet shows it; "
    "format the column as text in the source and export again"
)
ZEROED_BY_SPREADSHEET = (
    "invalid identity number: wrong check digit, and the last three digits are 0 as when a spreadsheet "
    "keeps only 15 digits; format the column as text in the source and export again"
)
_EXPONENT_FORM = r"[0-9]+(\.[0-9]*)?E\+?[0-9]+"


def check_character(first_17: str) -> str:
    """Return the ISO 7064 MOD 11-2 check character of the first 17 digits of an identity number."""
    if len(first_17) != 17 or not first_17.isdigit():
        raise ValueError(f"expected 17 digits, got {len(first_17)} characters")
    total = int(np.dot(np.frombuffer(first_17.encode("ascii"), dtype=np.uint8) - 48, CHECK_WEIGHTS))
    return CHECK_CHARACTERS[total % 11]


def check_characters(first_17: np.ndarray) -> np.ndarray:
    """Return the check characters of many 17-digit strings at once (a numpy array of ``str``)."""
    digits = np.frombuffer("".join(first_17.tolist()).encode("ascii"), dtype=np.uint8).reshape(-1, 17)
    totals = (digits.astype(np.int64) - 48) @ CHECK_WEIGHTS
    return np.array(list(CHECK_CHARACTERS))[totals % 11]


def mask_identity(value: object) -> str:
    """Return an identity number with its birth date and sequence hidden, as ``520121********123X``.

    Values too short to hide 8 characters are replaced by asterisks entirely.
    """
    if value is None or (isinstance(value, float) and np.isnan(value)) or value is pd.NA:
        return ""
    text = str(value)
    if len(text) < 14:
        return "*" * len(text)
    return text[:6] + "*" * (len(text) - 10) + text[-4:]


_IDENTITY_SHAPE = re.compile(r"[0-9]{17}[0-9Xx]")


def has_identity_shape(text: str) -> bool:
    """Return whether ``text`` is 17 ASCII digits then a digit or X, as an identity number is.

    The birth date and check character are not checked, so a mistyped number matches too.
    """
    return _IDENTITY_SHAPE.fullmatch(text) is not None


# Characters that people and spreadsheets put inside a number: spaces, hyphens, dots, slashes,
# underscores and invisible characters (zero-width space and joiners, word joiner, byte order mark).
_SEPARATOR_CLASS = "[ .\\-/_\u00a0\u200b\u200c\u200d\u2060\ufeff]"
# A run of 15 or more digits (any script), with an X and single separators allowed between
# them: an identity number, also when it is written in groups or runs into other digits.
_LONG_NUMBER_IN_TEXT = re.compile(rf"\d(?:{_SEPARATOR_CLASS}?[\dXxＸｘ]){{14,}}")
_IDENTITY_AT = re.compile(r"(?=([0-9]{17}[0-9X]))")


def contains_identity_number(text: str) -> bool:
    """Return whether ``text`` is or contains a resident identity number, however it is written.

    Full-width digits are read as digits and separators are ignored. A whole
    text with the shape of a number counts even with a wrong birth date or
    check character, because it is most likely a mistyped number. A part of
    the text counts only when its birth date and check character are valid,
    so that hex ids with long digit runs are not taken for numbers.
    """
    compact = _letters_and_digits(text)
    if has_identity_shape(compact) or _is_old_identity(compact):
        return True
    for match in _IDENTITY_AT.finditer(compact):
        number = match.group(1)
        if check_character(number[:17]) == number[17] and _is_birth_date(number[6:14]):
            return True
    return False


def _letters_and_digits(text: str) -> str:
    """Return ``text`` without any character that is neither a letter nor a digit, digits as ASCII, upper case.

    Every separator a person, a spreadsheet or a browser can put in a number
    (punctuation, spaces, dashes, invisible formatting and combining marks)
    is dropped, instead of being listed one by one.
    """
    kept = []
    for character in unicodedata.normalize("NFKC", text):
        if character.isdecimal():
            kept.append(str(unicodedata.decimal(character)))
        elif character.isalpha():
            kept.append(character)
    return "".join(kept).upper()


def _is_old_identity(compact: str) -> bool:
    # Numbers issued before 1999 have 15 digits, with the birth date as YYMMDD of the 1900s.
    # NOTE: callers check only a whole text for this form. It has no check character, so inside
    # a longer id it cannot be distinguished from a hex id's digit run.
    return len(compact) == 15 and compact.isdigit() and _is_birth_date("19" + compact[6:12])


# A run of 15 or more digits with up to three characters of any kind but letters and digits
# between them, for text a client writes (URLs, headers, request bodies).
_LOOSE_NUMBER_IN_TEXT = re.compile(r"\d(?:[\W_]{0,3}[\dXxＸｘ]){14,}")


def mask_identities_loosely(text: str) -> str:
    """Return ``text`` with every run of 15 or more digits masked, whatever separates the digits."""
    return _LOOSE_NUMBER_IN_TEXT.sub(_masked_run, text)


def mask_likely_identities_in_text(text: str) -> str:
    """Return ``text`` with the digit runs that hold a plausible identity number masked.

    Unlike ``mask_identities_loosely``, a run is masked only when some 18
    digits of it (or 15, for a number issued before 1999) have a real birth
    date where an identity number has it. Ids of hex digits then stay
    readable in logs.
    """
    return _LOOSE_NUMBER_IN_TEXT.sub(_masked_if_plausible, text)


def _masked_if_plausible(match: re.Match[str]) -> str:
    run = match.group(0)
    digits = _letters_and_digits(run)
    plausible = any(
        _is_birth_date(digits[start + 6 : start + 14]) for start in range(len(digits) - 17)
    ) or any(_is_old_identity(digits[start : start + 15]) for start in range(len(digits) - 14))
    return _masked_run(match) if plausible else run


def _is_birth_date(digits: str) -> bool:
    try:
        born = datetime.strptime(digits, "%Y%m%d")
    except ValueError:
        return False
    return EARLIEST_BIRTH <= born <= datetime.now()


def _masked_run(match: re.Match[str]) -> str:
    run = match.group(0)
    return run[:6] + "*" * (len(run) - 10) + run[-4:]


def mask_identities_in_text(text: str) -> str:
    """Return free text, such as a malformed CSV line, with every identity number in it masked.

    Any run of 15 or more digits is masked as ``mask_identity`` masks a
    number: only its first 6 and last 4 characters are kept. That masks
    some long numbers that are not identity numbers, which is the safe way
    to be wrong.
    """
    return _LONG_NUMBER_IN_TEXT.sub(_masked_run, text)


def mask_identities_in_cells(values: pd.Series) -> pd.Series:
    """Return ``mask_identities_in_text`` of each cell, for columns not declared as identity numbers.

    An identity number can reach any column (a shifted row, a column the
    export does not declare), and quarantine files show cells as read.
    Missing values become ''.
    """
    codes, uniques = pd.factorize(values, use_na_sentinel=True)
    masked = np.array([mask_identities_in_text(str(value)) for value in uniques] + [""], dtype=object)
    return pd.Series(masked[codes], index=values.index, dtype="string")


def shown_file_name(path: Path) -> str:
    """Return a delivered file's name as reports, lineage and messages show it: identity numbers masked."""
    return mask_identities_in_text(Path(path).name)


def mask_identities(values: pd.Series) -> pd.Series:
    """Return ``mask_identity`` of each value; missing values become ''."""
    codes, uniques = pd.factorize(values, use_na_sentinel=True)
    masked = np.array([mask_identity(value) for value in uniques] + [""], dtype=object)
    return pd.Series(masked[codes], index=values.index, dtype="string")


def identity_problems(values: pd.Series, latest_birth: pd.Timestamp) -> pd.Series:
    """Return the reason each identity number is invalid, or missing where it is valid or absent.

    Checks length, digits, the birth date (a real date between 1880 and
    ``latest_birth``) and the check character. An ``x`` is read as ``X``.
    Works on the distinct values only.
    """
    codes, uniques = pd.factorize(values, use_na_sentinel=True)
    reasons = _unique_problems(pd.Series(uniques, dtype="string").str.upper(), latest_birth)
    result = np.full(len(values), None, dtype=object)
    present = codes >= 0
    result[present] = reasons[codes[present]]
    return pd.Series(result, index=values.index, dtype="string")


def _unique_problems(numbers: pd.Series, latest_birth: pd.Timestamp) -> np.ndarray:
    reasons = np.full(len(numbers), None, dtype=object)
    right_length = (numbers.str.len() == IDENTITY_LENGTH).to_numpy(dtype=bool)
    reasons[~right_length] = WRONG_LENGTH
    exponent_form = numbers.str.fullmatch(_EXPONENT_FORM).fillna(False).to_numpy(dtype=bool)
    reasons[exponent_form] = SPREADSHEET_NUMBER
    well_formed = right_length & numbers.str.fullmatch(r"[0-9]{17}[0-9X]").fillna(False).to_numpy(dtype=bool)
    reasons[right_length & ~well_formed] = NOT_DIGITS
    if not well_formed.any():
        return reasons
    formed = numbers[well_formed]
    births = pd.to_datetime(formed.str.slice(6, 14), format="%Y%m%d", errors="coerce")
    real_date = (births.notna() & (births >= EARLIEST_BIRTH)).to_numpy(dtype=bool)
    in_past = (births <= latest_birth).fillna(False).to_numpy(dtype=bool)
    expected = check_characters(formed.str.slice(0, 17).to_numpy(dtype=str))
    right_check = formed.str.slice(17, 18).to_numpy(dtype=str) == expected
    positions = np.flatnonzero(well_formed)
    reasons[positions[~right_check]] = BAD_CHECK_DIGIT
    zeroed = formed.str.endswith("000").to_numpy(dtype=bool)
    reasons[positions[~right_check & zeroed]] = ZEROED_BY_SPREADSHEET
    reasons[positions[real_date & ~in_past]] = FUTURE_BIRTH_DATE
    reasons[positions[~real_date]] = BAD_BIRTH_DATE
    return reasons


class IdentityHasher:
    """Keyed hashing of identity numbers into person and household ids.

    ``person`` and ``household`` use different prefixes inside the HMAC, so a
    household id (hashed from the head's number) never equals the head's
    person id. The ids are the first ``HASH_HEX_DIGITS`` hex digits.
    """

    def __init__(self, secret: str | bytes) -> None:
        key = secret.encode("utf-8") if isinstance(secret, str) else bytes(secret)
        if not key:
            raise ValueError("the identity hash secret is empty")
        self._key = key
        # Feeds repeat the same people many times, so each number is hashed once per run.
        self._cache: dict[tuple[str, str], str] = {}

    def fingerprint(self) -> str:
        """Return an id of the key itself, stored with a feed store so that a changed key is detected.

        It is an HMAC of a fixed message, so it reveals nothing of the key.
        """
        return hmac.digest(self._key, b"povwarn identity key fingerprint", hashlib.sha256).hex()[:16]

    def hash_one(self, kind: str, number: str) -> str:
        message = f"{kind}:{number.upper()}".encode()
        return hmac.digest(self._key, message, hashlib.sha256).hex()[:HASH_HEX_DIGITS]

    def hash_many(self, kind: str, numbers: Iterable[str]) -> list[str]:
        key = self._key
        digest = hmac.digest
        cache = self._cache
        hashed = []
        for number in numbers:
            value = cache.get((kind, number))
            if value is None:
                message = f"{kind}:{number.upper()}".encode()
                value = digest(key, message, hashlib.sha256).hex()[:HASH_HEX_DIGITS]
                cache[(kind, number)] = value
            hashed.append(value)
        return hashed

    def hash_series(self, kind: str, values: pd.Series) -> pd.Series:
        """Return the ``kind`` id (``person`` or ``household``) of each number; missing stays missing.

        Hashes each distinct number once and raises ``RuntimeError`` if two
        distinct numbers give the same truncated id.
        """
        codes, uniques = pd.factorize(values.astype("string").str.upper(), use_na_sentinel=True)
        hashed = self.hash_many(kind, (str(value) for value in uniques))
        if len(set(hashed)) != len(hashed):
            raise RuntimeError(f"two identity numbers share a {kind} id; raise HASH_HEX_DIGITS")
        lookup = np.array([*hashed, None], dtype=object)
        return pd.Series(lookup[codes], index=values.index, dtype="string")
