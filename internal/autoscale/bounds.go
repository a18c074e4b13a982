package autoscale

// Bounded is a policy whose replica bounds may change while it runs,
// keeping what it has learned of the load: an operator raising a live
// service's floor before a launch, or its ceiling for a bigger budget.
// The gpufleet and kpa policies are Bounded; a Static count is replaced.
type Bounded interface {
	Policy
	// SetBounds moves the bounds; bounds Validate refuses are refused and
	// change nothing.
	SetBounds(minReplicas, maxReplicas int) error
}

func setBounds(s *Spec, minReplicas, maxReplicas int) error {
	n := *s
	n.MinReplicas, n.MaxReplicas = minReplicas, maxReplicas
	if err := n.Validate(); err != nil {
		return err
	}
	*s = n
	return nil
}

// SetBounds moves the policy's replica bounds; its history stays.
func (g *Gpufleet) SetBounds(minReplicas, maxReplicas int) error {
	return setBounds(&g.spec, minReplicas, maxReplicas)
}

// SetBounds moves the policy's replica bounds; its windows stay.
func (k *KPA) SetBounds(minReplicas, maxReplicas int) error {
	return setBounds(&k.spec, minReplicas, maxReplicas)
}
