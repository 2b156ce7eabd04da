"""drain3's masking, one whitespace-separated token at a time, with a cache of masked tokens.

Lines are mostly new (block ids, offsets), their tokens mostly not (words, hosts, sizes): a
token seen before costs a dict lookup instead of one regex substitution per mask. This gives
exactly the tokens drain3 would give when no mask can match or look across whitespace, which
`token_safe` checks on each pattern's parse tree; otherwise whole lines are masked as before."""

from __future__ import annotations

import re
import sys
from collections.abc import Callable
from re import _constants as sre_constants
from re import _parser as sre_parser

from drain3.masking import LogMasker, MaskingInstruction

_WHITESPACE = [c for c in range(sys.maxunicode + 1) if chr(c).isspace()]
_CATEGORIES_WITHOUT_SPACE = {
    sre_constants.CATEGORY_WORD, sre_constants.CATEGORY_DIGIT, sre_constants.CATEGORY_NOT_SPACE,
    sre_constants.CATEGORY_UNI_WORD, sre_constants.CATEGORY_UNI_DIGIT, sre_constants.CATEGORY_UNI_NOT_SPACE,
}  # fmt: skip
_WORD_BOUNDARIES = {sre_constants.AT_BOUNDARY, sre_constants.AT_NON_BOUNDARY,
                    sre_constants.AT_UNI_BOUNDARY, sre_constants.AT_UNI_NON_BOUNDARY}  # fmt: skip


def _inner_patterns(op, arg) -> list | None:
    """The parsed sub-patterns of a repeat, group, look-around, alternation or atomic group; None
    for anything else (a test of one character, an anchor, a back reference)."""
    if op in (sre_constants.MAX_REPEAT, sre_constants.MIN_REPEAT, sre_constants.POSSESSIVE_REPEAT):
        return [arg[2]]
    if op is sre_constants.SUBPATTERN:
        return [arg[3]]
    if op in (sre_constants.ASSERT, sre_constants.ASSERT_NOT):
        return [arg[1]]
    if op is sre_constants.BRANCH:
        return arg[1]
    if op is sre_constants.ATOMIC_GROUP:
        return [arg]
    return None


def _every_test(items, test_ok) -> bool:
    """True when `test_ok(op, arg)` holds for every test in this parsed pattern, at any depth."""
    for op, arg in items:
        inner = _inner_patterns(op, arg)
        if inner is None:
            if not test_ok(op, arg):
                return False
        elif not all(_every_test(pattern, test_ok) for pattern in inner):
            return False
    return True


def _never_whitespace(op, arg) -> bool:
    """Can this test never match a whitespace character or an edge of the line?"""
    if op is sre_constants.LITERAL:
        return not chr(arg).isspace()
    if op is sre_constants.IN:
        for inner_op, inner_arg in arg:
            if inner_op is sre_constants.NEGATE:
                return False
            if inner_op is sre_constants.LITERAL and chr(inner_arg).isspace():
                return False
            if inner_op is sre_constants.RANGE and any(inner_arg[0] <= c <= inner_arg[1] for c in _WHITESPACE):
                return False
            if inner_op is sre_constants.CATEGORY and inner_arg not in _CATEGORIES_WITHOUT_SPACE:
                return False
        return True
    if op is sre_constants.AT:
        return arg in _WORD_BOUNDARIES  # ^ $ \A \Z would hold at every token
    # A back reference repeats a group checked on its own; anything else (., [^...], \s, \W,
    # conditionals) is not provably safe.
    return op is sre_constants.GROUPREF


_NONZERO_DIGITS = "123456789"
_SHAPE = str.maketrans(_NONZERO_DIGITS, "1" * 9)


def _blind_to_digits(op, arg) -> bool:
    """Does this test treat the digits 1-9 alike (0 may be special)?"""
    if op in (sre_constants.LITERAL, sre_constants.NOT_LITERAL):
        return chr(arg) not in _NONZERO_DIGITS
    if op is sre_constants.IN:
        for inner_op, inner_arg in arg:
            if inner_op is sre_constants.LITERAL and chr(inner_arg) in _NONZERO_DIGITS:
                return False
            if inner_op is sre_constants.RANGE:
                if sum(inner_arg[0] <= ord(c) <= inner_arg[1] for c in _NONZERO_DIGITS) not in (0, 9):
                    return False
            elif inner_op not in (sre_constants.LITERAL, sre_constants.CATEGORY, sre_constants.NEGATE):
                return False
        return True
    # Back references and conditionals compare text, and the token's is not the shape's.
    return op in (sre_constants.ANY, sre_constants.AT, sre_constants.CATEGORY)


def digit_blind(pattern: str) -> bool:
    """Does this mask match a token with its digits 1-9 made 1 exactly where it matches the token?"""
    try:
        return _every_test(sre_parser.parse(pattern), _blind_to_digits)
    except re.error:
        return False


def token_safe(pattern: str, mask_with: str) -> bool:
    """Can this mask be applied token by token with the same result as on the whole line?"""
    try:
        parsed = sre_parser.parse(pattern)
    except re.error:
        return False
    return (
        parsed.getwidth()[0] > 0 and _every_test(parsed, _never_whitespace) and not any(c.isspace() for c in mask_with)
    )


def mask_function(masker: LogMasker) -> Callable[[str], str]:
    """`masker.mask`, without a method call and a string concatenation per mask where its masks
    are drain3's regex instructions (what `make_masker` builds): new tokens pay for every mask."""
    if not all(type(m) is MaskingInstruction for m in masker.masking_instructions):
        return masker.mask
    substitutions = [
        (m.regex.sub, masker.mask_prefix + m.mask_with + masker.mask_suffix) for m in masker.masking_instructions
    ]

    def mask(content: str) -> str:
        for substitute, mask_text in substitutions:
            content = substitute(mask_text, content)
        return content

    return mask


class TokenMasker:
    def __init__(self, masker: LogMasker, max_cached: int = 200_000) -> None:
        self.masker = masker
        self.mask_text = mask_function(masker)
        self.max_cached = max_cached
        self.cache: dict[str, str] = {}
        # Tokens that differ only in their digits 1-9 mostly mask alike (block ids, ports, sizes):
        # where the masks cannot tell those digits apart, a token's shape decides its masked form.
        mask_texts = [masker.mask_prefix + m.mask_with + masker.mask_suffix for m in masker.masking_instructions]
        shapes_decide = all(digit_blind(m.pattern) for m in masker.masking_instructions) and not any(
            c in _NONZERO_DIGITS for text in mask_texts for c in text
        )
        self.by_shape: dict[str, str | None] | None = {} if shapes_decide else None

    @staticmethod
    def applies_to(masker: LogMasker) -> bool:
        return all(token_safe(m.pattern, m.mask_with) for m in masker.masking_instructions)

    def mask(self, content: str) -> str:
        """The masked content with its whitespace runs made single spaces (templates are token lists)."""
        tokens = content.split()
        masked = list(map(self.cache.get, tokens))
        if None in masked:
            masked = [m if m is not None else self._mask_token(t) for m, t in zip(masked, tokens)]
        return " ".join(masked)

    def _mask_token(self, token: str) -> str:
        masked = self._mask_by_shape(token) if self.by_shape is not None else None
        if masked is None:
            masked = self.mask_text(token)
        if len(self.cache) >= self.max_cached:
            self.cache.clear()  # cheaper than LRU bookkeeping on every hit; refills from the next lines
        self.cache[token] = masked
        return masked

    def _mask_by_shape(self, token: str) -> str | None:
        """The masked token, from its shape (digits 1-9 made 1), or None when the shape cannot tell:
        the masks match the shape where they match the token, so the two masked forms differ only
        in digits the masks left; where none is left, they are equal."""
        shape = token.translate(_SHAPE)
        try:
            return self.by_shape[shape]
        except KeyError:
            masked = self.mask_text(shape)
            if "1" in masked:
                masked = None
            if len(self.by_shape) >= self.max_cached:
                self.by_shape.clear()
            self.by_shape[shape] = masked
            return masked
