"""Token ids shared by training (torch) and serving (numpy): special tokens first, then log keys."""

from __future__ import annotations

import numpy as np

PAD, MASK, DIST, UNK, END, OPEN = 0, 1, 2, 3, 4, 5
N_SPECIAL = 6
UNPREDICTABLE = (PAD, MASK, DIST, UNK, OPEN)  # the model predicts END and log keys only

UNSEEN_KEY = -1  # a template never seen in training
END_KEY = -2  # closes a sequence known to have ended; masked like a key, so stopping early is a surprise
OPEN_KEY = -3  # closes a sequence that may continue; context only, never masked
_SPECIAL_KEYS = {END_KEY: END, OPEN_KEY: OPEN}


def key_to_token(key: int) -> int:
    if key in _SPECIAL_KEYS:
        return _SPECIAL_KEYS[key]
    return UNK if key < 0 else key + N_SPECIAL


def token_to_key(token: int) -> int:
    if token == END:
        return END_KEY
    if token == OPEN:
        return OPEN_KEY
    return token - N_SPECIAL if token >= N_SPECIAL else UNSEEN_KEY


def keys_to_tokens(keys: np.ndarray) -> np.ndarray:
    """key_to_token over an array of keys."""
    tokens = keys + N_SPECIAL
    tokens[keys < 0] = UNK
    tokens[keys == END_KEY] = END
    tokens[keys == OPEN_KEY] = OPEN
    return tokens


def tokens_to_keys(tokens: np.ndarray) -> np.ndarray:
    """token_to_key over an array of tokens."""
    return np.where(tokens >= N_SPECIAL, tokens - N_SPECIAL, _KEY_OF_SPECIAL[np.minimum(tokens, N_SPECIAL - 1)])


_KEY_OF_SPECIAL = np.array([token_to_key(token) for token in range(N_SPECIAL)])
