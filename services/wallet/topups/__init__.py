"""Top-ups (チャージ) at a city counter or from a bank's signed webhook, and cash-outs (払戻し):
where paid-in value enters and leaves circulation."""
