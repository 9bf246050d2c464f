"""Pure analysis (numpy only) of what a run recorded: attribution of energy to steps and layer calls, results, replay
results, counter chains, precision, cross-check agreement and the units people quote. Each returns typed figures."""
