package main

import (
	"github.com/spf13/cobra"

	"github.com/goldsmith-dev/goldsmith/template"
)

// newGroupCommand is `goldsmith group create NAME --location L`.
func newGroupCommand() *cobra.Command {
	cmd := &cobra.Command{Use: "group", Short: "Manage resource groups on a goldsmith server"}
	var f clientFlags
	var location string
	create := &cobra.Command{
		Use:   "create NAME",
		Short: "Create (or update) a resource group",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := f.client(false)
			if err != nil {
				return err
			}
			g, err := c.PutGroup(cmd.Context(), args[0], location)
			if err != nil {
				return clientFailure(err)
			}
			if f.output == "json" {
				return printJSON(cmd.OutOrStdout(), g)
			}
			return printTable(cmd.OutOrStdout(), []string{"NAME", "LOCATION", "STATE"},
				[][]string{{g.Name, g.Location, g.Properties.ProvisioningState}})
		},
	}
	addClientFlags(create, &f, false)
	create.Flags().StringVarP(&location, "location", "l", template.DefaultLocation, "region")
	cmd.AddCommand(create)
	return cmd
}
