"""Head office: gallery packages for branches, erasures that reach every branch, the outcome
and fleet collector (PostgreSQL), reports and the fleet benchmark.

It speaks the MQTT contract (:mod:`mqtt`) and the gallery package format
(:mod:`mqtt.package`) only, like a tablet does; it never imports the edge (see
``.importlinter``).  Templates come from ``branch-edge fleet embed`` (the same detector,
alignment and recognizer as the branches) run as a program, or from its JSON output.
"""
