"""The imperative shell: the Faust app, its topics, tables and agents."""
