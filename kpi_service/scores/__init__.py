"""KPI schemes and scores: which indicators count, their targets and weights, and the
composite score per worker and period computed from measured and external metrics."""
