"""Regression corpus (issue 14): small inputs with the right answers, shared by unit and e2e tests."""
