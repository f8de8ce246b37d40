"""Diagnosis of a funnel: the bottleneck and what it costs, managers on a funnel plot, whether a change is real,
A/B tests, KPIs and cohorts. See docs/diagnosis.md for every definition."""
