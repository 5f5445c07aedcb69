"""The imperative shell around the helpdesk: poll, store, bill, write back."""
