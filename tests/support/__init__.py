"""Small test-only helpers: scripted HTTP peers, a webhook receiver, schema-driven fuzz
strategies and the real consumers (helm, kstatus, Argo CD's Lua) of the integration files."""
