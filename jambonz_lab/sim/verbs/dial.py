"""Verb runners: dial (see jambonz_lab.sim.verbs)."""

from __future__ import annotations
