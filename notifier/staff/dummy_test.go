package staff

import (
	"testing"

	"golang.org/x/crypto/bcrypt"
)

// A sign-in with an unknown email must cost what a wrong password costs:
// the written-out dummy hash must be a well-formed bcrypt hash (a malformed
// one is refused at once, without the work) at the accounts' cost.
func TestDummyHash(t *testing.T) {
	cost, err := bcrypt.Cost([]byte(dummyHash))
	if err != nil {
		t.Fatalf("dummy hash is not a bcrypt hash: %v", err)
	}
	if cost != bcryptCost {
		t.Errorf("dummy hash has cost %d, accounts %d", cost, bcryptCost)
	}
	if err := bcrypt.CompareHashAndPassword([]byte(dummyHash), []byte("not a password of anyone's")); err != nil {
		t.Errorf("dummy hash does not match its password: %v", err)
	}
	if bcryptCompareDummy("hunter2hunter2") {
		t.Error("a password matched the dummy hash")
	}
}
