package serve

import (
	"fmt"
	"math/rand/v2"
	"sort"
	"time"
)

// ColdStarts is an empirical distribution of replica cold starts (the time
// from starting a replica to its serving requests), given by percentiles
// and sampled by inverse transform with linear interpolation between them.
type ColdStarts struct {
	// Points are (percentile, milliseconds), percentiles rising from 0 to
	// 100 and times never falling.
	Points [][2]float64
}

// AlibabaColdStarts is the base-model loading latency of a production
// serverless inference system: 7,531 measurements of the Alibaba Cluster
// Trace Program's cluster-trace-v2026-GenAI (basemodel_update_latency_anon,
// GenTD26; free for research or study, with attribution), reduced to its
// percentiles (linear interpolation between order statistics). p50 22.7 s,
// p90 42.0 s, p99 51.8 s, max 79.4 s; a third of the loads take under 5 s
// (the model was close at hand), the rest 18-79 s.
var AlibabaColdStarts = ColdStarts{Points: [][2]float64{
	{0, 1329}, {1, 1531}, {2, 1660}, {3, 1861}, {4, 2074}, {5, 2287}, {6, 2447}, {7, 2520}, {8, 2560}, {9, 2597},
	{10, 2629}, {11, 2659}, {12, 2685}, {13, 2711}, {14, 2735}, {15, 2762}, {16, 2790}, {17, 2820}, {18, 2846},
	{19, 2884}, {20, 2918}, {21, 2963}, {22, 3002}, {23, 3050}, {24, 3097}, {25, 3144}, {26, 3210}, {27, 3290},
	{28, 3375}, {29, 3486}, {30, 3643}, {31, 3957}, {32, 4381}, {33, 4956}, {34, 5855}, {35, 7598}, {36, 10512},
	{37, 18113}, {38, 19228}, {39, 19708}, {40, 20056}, {41, 20409}, {42, 20659}, {43, 20934}, {44, 21159},
	{45, 21434}, {46, 21690}, {47, 21960}, {48, 22229}, {49, 22476}, {50, 22718}, {51, 22944}, {52, 23230},
	{53, 23564}, {54, 23853}, {55, 24214}, {56, 24542}, {57, 24993}, {58, 25547}, {59, 26147}, {60, 26910},
	{61, 28049}, {62, 29352}, {63, 30854}, {64, 32062}, {65, 33017}, {66, 33771}, {67, 34282}, {68, 34703},
	{69, 35062}, {70, 35390}, {71, 35680}, {72, 36059}, {73, 36342}, {74, 36575}, {75, 36921}, {76, 37193},
	{77, 37522}, {78, 37766}, {79, 37996}, {80, 38295}, {81, 38585}, {82, 38890}, {83, 39224}, {84, 39521},
	{85, 39824}, {86, 40252}, {87, 40630}, {88, 41066}, {89, 41513}, {90, 41988}, {91, 42463}, {92, 43079},
	{93, 43690}, {94, 44469}, {95, 45446}, {96, 46424}, {97, 47795}, {98, 49424}, {99, 51846}, {99.5, 53768},
	{99.9, 57905}, {100, 79436},
}}

// Fixed is a distribution that always gives d.
func Fixed(d time.Duration) ColdStarts {
	ms := float64(d) / float64(time.Millisecond)
	return ColdStarts{Points: [][2]float64{{0, ms}, {100, ms}}}
}

// Validate checks the points are a distribution.
func (c ColdStarts) Validate() error {
	if len(c.Points) < 2 {
		return fmt.Errorf("cold starts: want at least 2 percentile points, got %d", len(c.Points))
	}
	if c.Points[0][0] != 0 || c.Points[len(c.Points)-1][0] != 100 {
		return fmt.Errorf("cold starts: percentiles must run from 0 to 100")
	}
	for i, p := range c.Points {
		if p[1] < 0 {
			return fmt.Errorf("cold starts: point %d: %g ms is negative", i, p[1])
		}
		if i > 0 && (p[0] <= c.Points[i-1][0] || p[1] < c.Points[i-1][1]) {
			return fmt.Errorf("cold starts: point %d: percentiles must rise and times must not fall", i)
		}
	}
	return nil
}

// Quantile is the time below which a share q (0..1) of cold starts fall.
func (c ColdStarts) Quantile(q float64) time.Duration {
	pct := min(max(q*100, 0), 100)
	pts := c.Points
	i := sort.Search(len(pts), func(i int) bool { return pts[i][0] >= pct })
	if i == 0 {
		return ms(pts[0][1])
	}
	lo, hi := pts[i-1], pts[i]
	f := (pct - lo[0]) / (hi[0] - lo[0])
	return ms(lo[1] + f*(hi[1]-lo[1]))
}

// Draw takes one cold start from the distribution.
func (c ColdStarts) Draw(r *rand.Rand) time.Duration { return c.Quantile(r.Float64()) }

func ms(v float64) time.Duration {
	return time.Duration(v * float64(time.Millisecond)).Round(time.Millisecond)
}
