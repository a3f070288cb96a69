package main

import (
	"strconv"

	"github.com/spf13/cobra"

	"github.com/goldsmith-dev/goldsmith/arm"
)

// newImageCommand is `goldsmith image ls` and `goldsmith image show`.
func newImageCommand() *cobra.Command {
	cmd := &cobra.Command{Use: "image", Short: "Managed images on a goldsmith server"}
	row := func(i arm.Image) []string {
		disk := i.Properties.StorageProfile.OSDisk
		return []string{i.Name, groupOf(i.ID), i.Location, disk.OSType, i.Properties.HyperVGeneration, strconv.Itoa(disk.DiskSizeGB)}
	}
	header := []string{"NAME", "RESOURCE GROUP", "LOCATION", "OS", "GENERATION", "SIZE GB"}
	var fl clientFlags
	ls := &cobra.Command{
		Use:     "ls [-g GROUP]",
		Aliases: []string{"list"},
		Short:   "List managed images",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := fl.client(false)
			if err != nil {
				return err
			}
			imgs, err := c.ListImages(cmd.Context(), fl.group)
			if err != nil {
				return clientFailure(err)
			}
			if fl.output == "json" {
				if imgs == nil {
					imgs = []arm.Image{}
				}
				return printJSON(cmd.OutOrStdout(), imgs)
			}
			rows := make([][]string, len(imgs))
			for i, img := range imgs {
				rows[i] = row(img)
			}
			return printTable(cmd.OutOrStdout(), header, rows)
		},
	}
	addClientFlags(ls, &fl, true)
	var fs clientFlags
	show := &cobra.Command{
		Use:   "show NAME -g GROUP",
		Short: "Show a managed image",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := fs.client(true)
			if err != nil {
				return err
			}
			img, err := c.GetImage(cmd.Context(), fs.group, args[0])
			if err != nil {
				return clientFailure(err)
			}
			if fs.output == "json" {
				return printJSON(cmd.OutOrStdout(), img)
			}
			return printTable(cmd.OutOrStdout(), header, [][]string{row(img)})
		},
	}
	addClientFlags(show, &fs, true)
	cmd.AddCommand(ls, show, newImageExportCommand())
	return cmd
}
