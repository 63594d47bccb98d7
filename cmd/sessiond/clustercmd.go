package main

import (
	"context"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"connectrpc.com/connect"
	"github.com/spf13/cobra"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	clusterv1 "github.com/sessiond/sessiond/clients/go/gen/sessiond/cluster/v1"
	"github.com/sessiond/sessiond/clients/go/gen/sessiond/cluster/v1/clusterv1connect"
)

// clusterClientFlags are the flags every `sessiond cluster` command takes.
type clusterClientFlags struct {
	creds   apiCredentials
	output  string
	timeout time.Duration
}

func (f *clusterClientFlags) bind(cmd *cobra.Command) {
	fs := cmd.Flags()
	f.creds.bind(fs, defaultAPIAddr)
	fs.StringVarP(&f.output, "output", "o", "table", "table or json")
	fs.DurationVar(&f.timeout, "timeout", 15*time.Second, "deadline of the call")
}

func (f *clusterClientFlags) client() (clusterv1connect.ClusterServiceClient, error) {
	if f.output != "table" && f.output != "json" {
		return nil, usageError{fmt.Errorf("-o %q: want table or json", f.output)}
	}
	hc, base, opts, err := f.creds.connection()
	if err != nil {
		return nil, err
	}
	return clusterv1connect.NewClusterServiceClient(hc, base, opts...), nil
}

// printJSON writes a message as indented JSON.
func printJSON(w io.Writer, m proto.Message) error {
	b, err := protojson.MarshalOptions{Multiline: true, EmitUnpopulated: true, UseProtoNames: true}.Marshal(m)
	if err != nil {
		return err
	}
	_, err = fmt.Fprintln(w, string(b))
	return err
}

func newClusterCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "cluster", Short: "Operate a running cluster through any node"}
	cmd.AddCommand(newClusterStatusCmd(), newClusterJoinCmd(), newClusterRemoveCmd(), newClusterTransferCmd())
	return cmd
}

func newClusterStatusCmd() *cobra.Command {
	var f clusterClientFlags
	cmd := &cobra.Command{
		Use: "status", Short: "Show the leader, the indexes and every member's health", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := f.client()
			if err != nil {
				return err
			}
			ctx, cancel := contextTimeout(cmd, f.timeout)
			defer cancel()
			res, err := c.Status(ctx, connect.NewRequest(&clusterv1.StatusRequest{}))
			if err != nil {
				return err
			}
			if f.output == "json" {
				return printJSON(cmd.OutOrStdout(), res.Msg)
			}
			return printStatus(cmd.OutOrStdout(), res.Msg)
		},
	}
	f.bind(cmd)
	return cmd
}

func printStatus(w io.Writer, s *clusterv1.StatusResponse) error {
	leader := s.GetLeaderId()
	if leader == "" {
		leader = "(none)"
	}
	fmt.Fprintf(w, "leader %s (region %s)  term %d  commit %d  applied %d  last %d  (answered by %s)\n\n",
		leader, s.GetLeaderRegion(), s.GetTerm(), s.GetCommitIndex(), s.GetAppliedIndex(), s.GetLastIndex(), s.GetAnsweredBy())
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NODE\tREGION\tROLE\tSUFFRAGE\tHEALTH\tRAFT\tAPI\tAPPLIED\tLAST CONTACT")
	for _, m := range s.GetMembers() {
		role := "follower"
		switch {
		case m.GetLeader():
			role = "leader"
		case m.GetSuffrage() == clusterv1.Suffrage_SUFFRAGE_UNSPECIFIED:
			role = "-"
		case m.GetStaging():
			role = "staging"
		}
		contact := "-"
		if m.GetLastContact() != nil {
			contact = m.GetLastContact().AsDuration().Round(time.Millisecond).String()
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%d\t%s\n", m.GetNodeId(), m.GetRegion(), role,
			enumName(m.GetSuffrage().String(), "SUFFRAGE_"), enumName(m.GetHealth().String(), "GOSSIP_HEALTH_"),
			m.GetRaftAddr(), m.GetApiAddr(), m.GetAppliedIndex(), contact)
	}
	return tw.Flush()
}

func enumName(s, prefix string) string { return strings.ToLower(strings.TrimPrefix(s, prefix)) }

func newClusterJoinCmd() *cobra.Command {
	var f clusterClientFlags
	req := &clusterv1.JoinRequest{}
	cmd := &cobra.Command{
		Use: "join", Short: "Add a node to the cluster (it must be running)", Args: cobra.NoArgs,
		Example: "  sessiond cluster join --addr https://10.0.1.10:8080 --ca-file ca.pem --node-id tokyo-1 --raft-addr 10.0.3.10:7000 --api-addr 10.0.3.10:8080 --gossip-addr 10.0.3.10:7946 --region tokyo",
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := f.client()
			if err != nil {
				return err
			}
			ctx, cancel := contextTimeout(cmd, f.timeout)
			defer cancel()
			res, err := c.Join(ctx, connect.NewRequest(req))
			if err != nil {
				return err
			}
			if f.output == "json" {
				return printJSON(cmd.OutOrStdout(), res.Msg)
			}
			switch {
			case res.Msg.GetAlreadyMember():
				fmt.Fprintf(cmd.OutOrStdout(), "%s is already a member\n", req.GetNodeId())
			case req.GetVoter():
				fmt.Fprintf(cmd.OutOrStdout(), "%s joined as a non-voter; the leader promotes it to voter once it is caught up and healthy\n", req.GetNodeId())
			default:
				fmt.Fprintf(cmd.OutOrStdout(), "%s joined as a non-voter\n", req.GetNodeId())
			}
			return nil
		},
	}
	f.bind(cmd)
	fs := cmd.Flags()
	fs.StringVar(&req.NodeId, "node-id", "", "the joining node's id")
	fs.StringVar(&req.RaftAddr, "raft-addr", "", "its peer address host:port (the leader checks the node there presents a certificate naming --node-id)")
	fs.StringVar(&req.ApiAddr, "api-addr", "", "its API host:port")
	fs.StringVar(&req.GossipAddr, "gossip-addr", "", "its gossip host:port")
	fs.StringVar(&req.Region, "region", "", "its region")
	fs.BoolVar(&req.Voter, "voter", true, "add as a voter (false: non-voting read replica)")
	return cmd
}

func newClusterRemoveCmd() *cobra.Command {
	var f clusterClientFlags
	req := &clusterv1.RemoveRequest{}
	cmd := &cobra.Command{
		Use: "remove NODE_ID", Short: "Remove a node from the cluster", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := f.client()
			if err != nil {
				return err
			}
			req.NodeId = args[0]
			ctx, cancel := contextTimeout(cmd, f.timeout)
			defer cancel()
			res, err := c.Remove(ctx, connect.NewRequest(req))
			if err != nil {
				return err
			}
			if f.output == "json" {
				return printJSON(cmd.OutOrStdout(), res.Msg)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%s removed: the configuration without it is committed (leader %s, %d voters left)\n",
				req.GetNodeId(), res.Msg.GetLeaderId(), res.Msg.GetVoters())
			return nil
		},
	}
	f.bind(cmd)
	cmd.Flags().BoolVar(&req.Force, "force", false, "remove even if the remaining voters would lack a live quorum")
	return cmd
}

func newClusterTransferCmd() *cobra.Command {
	var f clusterClientFlags
	var target string
	cmd := &cobra.Command{
		Use: "transfer-leader [NODE_ID]", Short: "Hand leadership to a voter (default: the most up to date)", Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := f.client()
			if err != nil {
				return err
			}
			req := &clusterv1.TransferLeadershipRequest{}
			if len(args) == 1 {
				target = args[0]
			}
			if target != "" {
				req.TargetNodeId = &target
			}
			ctx, cancel := contextTimeout(cmd, f.timeout)
			defer cancel()
			res, err := c.TransferLeadership(ctx, connect.NewRequest(req))
			if err != nil {
				return err
			}
			if f.output == "json" {
				return printJSON(cmd.OutOrStdout(), res.Msg)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "leader is now %s\n", res.Msg.GetNewLeaderId())
			return nil
		},
	}
	f.bind(cmd)
	return cmd
}

// contextTimeout bounds a CLI call.
func contextTimeout(cmd *cobra.Command, d time.Duration) (context.Context, context.CancelFunc) {
	return context.WithTimeout(cmd.Context(), d)
}
