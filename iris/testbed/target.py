"""A response distribution with exact likelihoods: prompt-conditioned Markov chains.

Owns the "data" of the embedded testbed. A prompt is one token ``p{k}``; its response is a
first-order Markov chain over ``S`` symbols ``s0 … s{S−1}`` with a prompt-dependent start
distribution, a transition matrix shared by all prompts, a per-state stop probability
and a length cap ``L`` (a chain reaching length L stops):

    p(y | x) = π_x(y_1) · Π_{i=2..l} T(y_{i−1}, y_i) · Π_{i<l} (1 − q(y_i)) · [q(y_l) if l < L else 1]

so ``log p_data(y|x)`` is exact, sampling is direct, and for small S and L the support
(Σ_{l=1..L} S^l sequences per prompt) can be enumerated for exact divergences.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class MarkovTarget:
    """The parameters of the target; build one with :func:`make_target`.

    Attributes:
        start: (K, S) start distribution per prompt.
        transition: (S, S) row-stochastic transition matrix.
        stop: (S,) probability of stopping after each symbol (before the cap).
        max_length: L, the length cap.
    """

    start: np.ndarray
    transition: np.ndarray
    stop: np.ndarray
    max_length: int

    @property
    def num_prompts(self) -> int:
        return self.start.shape[0]

    @property
    def num_symbols(self) -> int:
        return self.start.shape[1]

    @property
    def prompts(self) -> list[str]:
        return [f"p{k}" for k in range(self.num_prompts)]

    @property
    def symbols(self) -> list[str]:
        return [f"s{s}" for s in range(self.num_symbols)]

    @property
    def vocabulary(self) -> list[str]:
        """Every word the testbed uses: prompt tokens, then symbols."""
        return self.prompts + self.symbols

    def _continuation_log_prob(self, response: tuple[int, ...]) -> float:
        """Every factor of p(response | prompt) after the start: transitions and stops."""
        total = 0.0
        for prev, nxt in itertools.pairwise(response):
            total += math.log(self.transition[prev, nxt])
        for s in response[:-1]:
            total += math.log1p(-self.stop[s])
        if len(response) < self.max_length:
            total += math.log(self.stop[response[-1]])
        return total

    def log_prob(self, prompt: int, response: tuple[int, ...]) -> float:
        """Exact ``log p_data(response | prompt)``; −inf outside the support."""
        if not 1 <= len(response) <= self.max_length:
            return -math.inf
        if any(not 0 <= s < self.num_symbols for s in response):
            return -math.inf
        return math.log(self.start[prompt, response[0]]) + self._continuation_log_prob(response)

    def sample(self, prompt: int, rng: np.random.Generator) -> tuple[int, ...]:
        state = int(rng.choice(self.num_symbols, p=self.start[prompt]))
        response = [state]
        while len(response) < self.max_length and rng.random() >= self.stop[state]:
            state = int(rng.choice(self.num_symbols, p=self.transition[state]))
            response.append(state)
        return tuple(response)

    def support(self) -> list[tuple[int, ...]]:
        """All responses of length 1..L (the same for every prompt)."""
        return [
            seq
            for length in range(1, self.max_length + 1)
            for seq in itertools.product(range(self.num_symbols), repeat=length)
        ]

    def support_log_probs(self) -> np.ndarray:
        """(K, |support|) exact log-probabilities of :meth:`support`, vectorised."""
        sequences = self.support()
        out = np.empty((self.num_prompts, len(sequences)))
        for j, seq in enumerate(sequences):
            out[:, j] = np.log(self.start[:, seq[0]]) + self._continuation_log_prob(seq)
        return out

    def entropy(self) -> np.ndarray:
        """(K,) exact entropy of p(·|x) in nats, by dynamic programming over (length, state).

        H = Σ_steps E[−log of each factor]; the state distribution after i emitted symbols
        (and not yet stopped) propagates through ``(1 − q) T``.
        """
        h = np.zeros(self.num_prompts)
        with np.errstate(divide="ignore", invalid="ignore"):
            log_t = np.where(self.transition > 0, np.log(self.transition), 0.0)
            log_start = np.where(self.start > 0, np.log(self.start), 0.0)
            stop_entropy = -(
                np.where(self.stop > 0, self.stop * np.log(self.stop), 0.0)
                + np.where(self.stop < 1, (1 - self.stop) * np.log1p(-self.stop), 0.0)
            )
        alive = self.start.copy()  # mass at each state after the first symbol, not stopped
        h += -(self.start * log_start).sum(axis=1)
        transition_entropy = -(self.transition * log_t).sum(axis=1)
        for _ in range(1, self.max_length):  # after symbols 1 … L−1
            h += alive @ stop_entropy  # the stop/continue decision
            alive = alive * (1 - self.stop)  # mass that continues
            h += alive @ transition_entropy
            alive = alive @ self.transition
        return h


def make_target(
    num_prompts: int = 4,
    num_symbols: int = 4,
    max_length: int = 6,
    *,
    seed: int = 0,
    concentration: float = 0.5,
    mean_stop: float = 0.3,
) -> MarkovTarget:
    """A random target: Dirichlet(concentration) start rows and transitions, stop
    probabilities around ``mean_stop`` (Beta-distributed), deterministic for ``seed``."""
    rng = np.random.default_rng(seed)
    start = rng.dirichlet(np.full(num_symbols, concentration), size=num_prompts)
    transition = rng.dirichlet(np.full(num_symbols, concentration), size=num_symbols)
    stop = rng.beta(10 * mean_stop, 10 * (1 - mean_stop), size=num_symbols)
    return MarkovTarget(start, transition, stop, max_length)
