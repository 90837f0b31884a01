"""Authorised access to the archive: who may do what (roles and their keys), search, and subject requests."""
