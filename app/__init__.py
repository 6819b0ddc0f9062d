"""The composition root: builds the apps (app.application), the CLI (app.cli) and the demo town
(app.demo), and wires the services together (app.wiring). It may import everything; nothing
imports it (ARCHITECTURE.md)."""
