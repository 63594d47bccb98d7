// Command sessiond is the multi-region replicated session store and auth
// daemon. Run `sessiond --help` for its subcommands.
package main

import (
	"fmt"
	"os"
)

func main() {
	fmt.Fprintln(os.Stderr, "sessiond: not wired yet")
	os.Exit(2)
}
