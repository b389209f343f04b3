"""Scoring: a rubric (data), payer inputs (raw, timestamped, with evidence) and a pure engine.

Typical use::

    from probe.score.engine import score
    from probe.score.rubric import load_rubric

    card = score(payer_inputs, load_rubric(), as_of=datetime.now(UTC))
    for ranked in card.payers:
        print(ranked.rank, ranked.score.payer, ranked.score.total)

See docs/scoring.md for every metric, its bands and edge decisions.
"""
