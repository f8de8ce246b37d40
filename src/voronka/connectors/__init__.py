"""Clients of CRM APIs (amoCRM, Bitrix24) that bring pipelines, deals and their stage history in."""
