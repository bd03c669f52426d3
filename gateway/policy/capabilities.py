"""``classify``: which capabilities a request body carries, per the bundle.

The classifiers are compiled at bundle load (``compiled.compile_body``): each
capability's ``prompt_matches`` list is one combined regex, so classifying is
one ``search`` per capability over the prompt text plus a few comparisons.
"""

from __future__ import annotations

from gateway.policy.compiled import CompiledBundle
from gateway.policy.facts import BodyFacts


def classify(body: BodyFacts, bundle: CompiledBundle) -> frozenset[str]:
    """Names of every capability whose ``when`` holds for this body."""
    return bundle.classify(body)
