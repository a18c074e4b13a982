package api

import (
	"encoding/json"
	"testing"
)

// The accounting decoders refuse bad input with an *Error and accept only
// what the ledger can take: exact positive amounts, names, a type of the
// catalog, terms that end after they start.

func FuzzDecodeCreateGrant(f *testing.F) {
	f.Add([]byte(`{"tenant":"acme","amount":500}`))
	f.Add([]byte(`{"id":"launch","tenant":"acme","queue":"acme-train","kind":"promotional","amount":"0.25","start":"2026-12-01T00:00:00Z","expires":"2027-01-01T00:00:00Z"}`))
	f.Add([]byte(`{"tenant":"acme","amount":1e3}`))
	f.Add([]byte(`{"tenant":"acme","amount":-1}`))
	f.Add([]byte(`{"tenant":"acme","amount":0.0000001}`))
	f.Add([]byte(`{"tenant":"Acme","amount":5,"colour":"red"}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		g, amount, e := DecodeCreateGrant(data)
		if e != nil {
			checkRefusal(t, e)
			return
		}
		if amount <= 0 || CheckName("tenant", g.Tenant) != nil || (g.Expires != nil && g.Start != nil && !g.Expires.After(*g.Start)) {
			t.Fatalf("accepted %+v (amount %d)", g, amount)
		}
		back, err := json.Marshal(g)
		if err != nil {
			t.Fatal(err)
		}
		if _, again, e := DecodeCreateGrant(back); e != nil || again != amount {
			t.Fatalf("re-encoded grant %s: %v, amount %d then %d", back, e, amount, again)
		}
	})
}

func FuzzDecodeCreateCommitment(f *testing.F) {
	f.Add([]byte(`{"id":"c1","tenant":"acme","type":"h100","site":"us-east/z1","count":64,"start":"2026-12-01T00:00:00Z","end":"2027-12-01T00:00:00Z","pricePerHour":1.6}`))
	f.Add([]byte(`{"id":"c1","tenant":"acme","type":"tpu9","count":1,"end":"2027-12-01T00:00:00Z","pricePerHour":1}`))
	f.Add([]byte(`{"id":"c1","tenant":"acme","type":"h100","count":0,"end":"2027-12-01T00:00:00Z","pricePerHour":1}`))
	f.Add([]byte(`{"id":"c1","tenant":"acme","type":"h100","count":1,"start":"2028-01-01T00:00:00Z","end":"2027-12-01T00:00:00Z","pricePerHour":1}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		c, price, e := DecodeCreateCommitment(data)
		if e != nil {
			checkRefusal(t, e)
			return
		}
		if price < 0 || c.Count < 1 || c.End.IsZero() || (c.Start != nil && !c.End.After(*c.Start)) {
			t.Fatalf("accepted %+v (price %d)", c, price)
		}
	})
}

func FuzzDecodeSetBudget(f *testing.F) {
	f.Add([]byte(`{"monthly":2000}`))
	f.Add([]byte(`{"monthly":0}`))
	f.Add([]byte(`{"monthly":"12.345678"}`))
	f.Add([]byte(`{"monthly":-5}`))
	f.Add([]byte(`{}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		m, e := DecodeSetBudget(data)
		if e != nil {
			checkRefusal(t, e)
			return
		}
		if m < 0 {
			t.Fatalf("accepted a negative budget %d", m)
		}
	})
}

func FuzzParseAmount(f *testing.F) {
	for _, s := range []string{"0", "500", "2.49", "-3.5", "1e3", "0.0000001", "999999999999.999999", ".5", "5."} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		m, err := ParseAmount(s, true)
		if err != nil {
			return
		}
		back, err := ParseAmount(m.Decimal(), true)
		if err != nil || back != m {
			t.Fatalf("%q read as %d, written %q, read back %d, %v", s, m, m.Decimal(), back, err)
		}
	})
}
