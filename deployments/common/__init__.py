"""Modules more than one role uses (ingress, serving, control); they import no role."""
