"""Reliability scenarios (issue 12), run by `crm bench reliability`."""
