package main

import (
	"fmt"
	"strings"
	"text/tabwriter"
	"time"

	"connectrpc.com/connect"
	"github.com/spf13/cobra"
	"google.golang.org/protobuf/types/known/durationpb"

	operatorv1 "github.com/sessiond/sessiond/clients/go/gen/sessiond/operator/v1"
	"github.com/sessiond/sessiond/clients/go/gen/sessiond/operator/v1/operatorv1connect"
)

func newOperatorCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "operator", Short: "Operator credentials: tokens, and who you are"}
	tokens := &cobra.Command{Use: "token", Short: "Create, list and revoke named operator tokens"}
	tokens.AddCommand(newTokenCreateCmd(), newTokenListCmd(), newTokenRevokeCmd())
	cmd.AddCommand(tokens, newWhoAmICmd())
	return cmd
}

func operatorClient(c *apiCredentials) (operatorv1connect.OperatorServiceClient, error) {
	hc, base, opts, err := c.connection()
	if err != nil {
		return nil, err
	}
	return operatorv1connect.NewOperatorServiceClient(hc, base, opts...), nil
}

func newTokenCreateCmd() *cobra.Command {
	var c apiCredentials
	var name string
	var scopes []string
	var ttl time.Duration
	cmd := &cobra.Command{
		Use:   "create",
		Short: "Create an operator token; it is printed once, only its hash is kept",
		Example: `  sessiond operator token create --socket /var/lib/sessiond/operator.sock --name ci --scope cluster:read --ttl 720h
  SESSIOND_TOKEN=$(cat admin.token) sessiond operator token create --addr https://hk:8080 --ca-file ca.pem --name deploy --scope cluster:write`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cl, err := operatorClient(&c)
			if err != nil {
				return err
			}
			req := &operatorv1.CreateTokenRequest{Name: name, Scopes: scopes}
			if ttl != 0 {
				req.Ttl = durationpb.New(ttl)
			}
			res, err := cl.CreateToken(cmd.Context(), connect.NewRequest(req))
			if err != nil {
				return err
			}
			fmt.Fprintln(cmd.OutOrStdout(), res.Msg.GetToken())
			fmt.Fprintf(cmd.ErrOrStderr(), "token %s (%s) with scopes %s, expires %s; store it now, it is not shown again\n",
				res.Msg.GetInfo().GetName(), res.Msg.GetInfo().GetId(), strings.Join(res.Msg.GetInfo().GetScopes(), ","),
				res.Msg.GetInfo().GetExpires().AsTime().Format(time.RFC3339))
			return nil
		},
	}
	c.bind(cmd.Flags(), defaultAPIAddr)
	cmd.Flags().StringVar(&name, "name", "", "token name: 1-64 of a-z 0-9 . _ - (unique among live tokens)")
	cmd.Flags().StringSliceVar(&scopes, "scope", nil, "scope (repeat or comma-separate): cluster:read, cluster:write, admin, tokens, check, watch, watch:details, introspect, revoke, metrics, reflection")
	cmd.Flags().DurationVar(&ttl, "ttl", 0, "lifetime (default 720h, at most 8760h)")
	return cmd
}

func newTokenListCmd() *cobra.Command {
	var c apiCredentials
	cmd := &cobra.Command{
		Use: "list", Short: "List the live operator tokens (never their secrets)", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cl, err := operatorClient(&c)
			if err != nil {
				return err
			}
			res, err := cl.ListTokens(cmd.Context(), connect.NewRequest(&operatorv1.ListTokensRequest{}))
			if err != nil {
				return err
			}
			tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "NAME\tID\tSCOPES\tEXPIRES\tCREATED BY")
			for _, t := range res.Msg.GetTokens() {
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", t.GetName(), t.GetId(), strings.Join(t.GetScopes(), ","),
					t.GetExpires().AsTime().Format(time.RFC3339), t.GetCreatedBy())
			}
			return tw.Flush()
		},
	}
	c.bind(cmd.Flags(), defaultAPIAddr)
	return cmd
}

func newTokenRevokeCmd() *cobra.Command {
	var c apiCredentials
	cmd := &cobra.Command{
		Use: "revoke ID|NAME", Short: "Revoke an operator token on every node", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			cl, err := operatorClient(&c)
			if err != nil {
				return err
			}
			res, err := cl.RevokeToken(cmd.Context(), connect.NewRequest(&operatorv1.RevokeTokenRequest{IdOrName: args[0]}))
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "revoked %s (index %d)\n", res.Msg.GetId(), res.Msg.GetIndex())
			return nil
		},
	}
	c.bind(cmd.Flags(), defaultAPIAddr)
	return cmd
}

func newWhoAmICmd() *cobra.Command {
	var c apiCredentials
	cmd := &cobra.Command{
		Use: "whoami", Short: "Show the principal your credential authenticates as", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cl, err := operatorClient(&c)
			if err != nil {
				return err
			}
			res, err := cl.WhoAmI(cmd.Context(), connect.NewRequest(&operatorv1.WhoAmIRequest{}))
			if err != nil {
				return err
			}
			m := res.Msg
			fmt.Fprintf(cmd.OutOrStdout(), "%s/%s via %s, scopes %s\n", m.GetKind(), m.GetName(), m.GetMethod(), strings.Join(m.GetScopes(), ","))
			return nil
		},
	}
	c.bind(cmd.Flags(), defaultAPIAddr)
	return cmd
}
