package main

import (
	"github.com/spf13/cobra"

	"github.com/goldsmith-dev/goldsmith/template"
)

// newGalleryCommand is `goldsmith gallery create` and `goldsmith gallery image create`.
func newGalleryCommand() *cobra.Command {
	cmd := &cobra.Command{Use: "gallery", Short: "Manage image galleries on a goldsmith server"}
	var f clientFlags
	var location, description string
	create := &cobra.Command{
		Use:   "create NAME -g GROUP",
		Short: "Create (or update) a gallery",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := f.client(true)
			if err != nil {
				return err
			}
			g, err := c.PutGallery(cmd.Context(), f.group, args[0], location, description)
			if err != nil {
				return clientFailure(err)
			}
			if f.output == "json" {
				return printJSON(cmd.OutOrStdout(), g)
			}
			return printTable(cmd.OutOrStdout(), []string{"NAME", "RESOURCE GROUP", "LOCATION", "STATE"},
				[][]string{{g.Name, f.group, g.Location, g.Properties.ProvisioningState}})
		},
	}
	addClientFlags(create, &f, true)
	create.Flags().StringVarP(&location, "location", "l", template.DefaultLocation, "region")
	create.Flags().StringVar(&description, "description", "", "description")

	image := &cobra.Command{Use: "image", Short: "Manage gallery image definitions"}
	var fi clientFlags
	var iloc, osType, osState, hyperV, publisher, offer, sku string
	icreate := &cobra.Command{
		Use:   "create GALLERY NAME -g GROUP --publisher P --offer O --sku S",
		Short: "Create (or update) a gallery image definition",
		Args:  cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := fi.client(true)
			if err != nil {
				return err
			}
			if publisher == "" || offer == "" || sku == "" {
				return usageError("--publisher, --offer and --sku are required")
			}
			d, err := c.PutGalleryImage(cmd.Context(), fi.group, args[0], args[1], iloc, map[string]any{
				"osType": osType, "osState": osState, "hyperVGeneration": hyperV,
				"identifier": map[string]any{"publisher": publisher, "offer": offer, "sku": sku}})
			if err != nil {
				return clientFailure(err)
			}
			if fi.output == "json" {
				return printJSON(cmd.OutOrStdout(), d)
			}
			return printTable(cmd.OutOrStdout(), []string{"NAME", "GALLERY", "OS", "STATE", "GENERATION", "IDENTIFIER"},
				[][]string{{d.Name, args[0], d.Properties.OSType, d.Properties.OSState,
					d.Properties.HyperVGeneration, publisher + ":" + offer + ":" + sku}})
		},
	}
	addClientFlags(icreate, &fi, true)
	ifl := icreate.Flags()
	ifl.StringVarP(&iloc, "location", "l", template.DefaultLocation, "region")
	ifl.StringVar(&osType, "os-type", "Linux", "Linux or Windows")
	ifl.StringVar(&osState, "os-state", "Generalized", "Generalized or Specialized")
	ifl.StringVar(&hyperV, "hyperv-generation", "V1", "V1 or V2")
	ifl.StringVar(&publisher, "publisher", "", "identifier publisher")
	ifl.StringVar(&offer, "offer", "", "identifier offer")
	ifl.StringVar(&sku, "sku", "", "identifier sku")
	image.AddCommand(icreate)
	cmd.AddCommand(create, image)
	return cmd
}
