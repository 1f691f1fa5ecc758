"""Evaluations of the companion: scripted conversations scored by the Weave scorers
(``sam2voice eval run``), with a table and an HTML report."""
