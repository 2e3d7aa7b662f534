package hostarch

import (
	"os"
	"testing"
)

func TestCheckHostPageSize(t *testing.T) {
	err := CheckHostPageSize()
	if (os.Getpagesize() == PageSize) != (err == nil) {
		t.Errorf("host page size %d, PageSize %d: CheckHostPageSize() = %v", os.Getpagesize(), PageSize, err)
	}
}
