"""Verb runners: ai (see jambonz_lab.sim.verbs)."""

from __future__ import annotations
