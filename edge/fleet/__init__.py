"""The branch's side of head office: gallery packages in, erasures applied and acknowledged,
the branch's fleet state, arrival counts and purchase links out (see docs/hq.md)."""
