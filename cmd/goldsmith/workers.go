package main

import (
	"strconv"
	"time"

	"github.com/spf13/cobra"
)

// newWorkersCommand is `goldsmith workers`: the processes on a server's job
// queue, with their capacity and running builds.
func newWorkersCommand() *cobra.Command {
	var f clientFlags
	cmd := &cobra.Command{
		Use:   "workers",
		Short: "List the workers (and API-only nodes) on a goldsmith server's database",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := f.client(false)
			if err != nil {
				return err
			}
			ws, err := c.Workers(cmd.Context())
			if err != nil {
				return clientFailure(err)
			}
			if f.output == "json" {
				return printJSON(cmd.OutOrStdout(), ws)
			}
			rows := make([][]string, 0, len(ws))
			for _, w := range ws {
				state := "alive"
				if !w.Alive {
					state = "dead"
				}
				capacity := strconv.Itoa(w.Capacity)
				if w.Capacity == 0 {
					capacity = "0 (API)"
				}
				rows = append(rows, []string{w.Owner, w.Node, capacity, strconv.Itoa(w.Running), state,
					time.Since(w.Seen).Round(time.Second).String() + " ago"})
			}
			return printTable(cmd.OutOrStdout(), []string{"NAME", "NODE", "CAPACITY", "RUNNING", "STATE", "HEARTBEAT"}, rows)
		},
	}
	addClientFlags(cmd, &f, false)
	return cmd
}
